"""Write sample_data/large_document.txt: a long, realistic report that a model can only
query by searching and aggregating (the default context of demo.py).

The document is the 2024 annual operations report of a fictional cold-chain logistics
company: twenty regional sections, each with narrative, a monthly volume table, site
notes and an incident log, followed by appendices. Everything comes from a seeded
random generator, so running this script again rewrites the same bytes:

    python scripts/make_sample_data.py

It also writes sample_data/expected_answers.json: three sample queries and their
answers, computed from the generated records (the demo's default query is the first).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

SEED = 2024
OUT_DIR = Path(__file__).resolve().parent.parent / "sample_data"
DOCUMENT = OUT_DIR / "large_document.txt"
ANSWERS = OUT_DIR / "expected_answers.json"

COMPANY = "Halvorsen Cold Chain Logistics"
REGIONS = [
    ("Nordic", "NOR", ["Bergen", "Oslo", "Trondheim", "Gothenburg", "Aarhus"]),
    ("Baltic", "BAL", ["Tallinn", "Riga", "Kaunas", "Klaipeda"]),
    ("Benelux", "BNL", ["Rotterdam", "Antwerp", "Liege", "Utrecht", "Ghent"]),
    ("Rhine-Ruhr", "RHR", ["Duisburg", "Cologne", "Dortmund", "Essen"]),
    ("Alpine", "ALP", ["Basel", "Innsbruck", "Graz", "Salzburg"]),
    ("Iberia North", "IBN", ["Bilbao", "Zaragoza", "Porto", "Valladolid"]),
    ("Iberia South", "IBS", ["Seville", "Valencia", "Malaga", "Lisbon", "Murcia"]),
    ("Po Valley", "POV", ["Milan", "Verona", "Bologna", "Piacenza"]),
    ("Adriatic", "ADR", ["Trieste", "Rijeka", "Split", "Koper"]),
    ("Danube", "DAN", ["Linz", "Vienna", "Bratislava", "Gyor", "Budapest"]),
    ("Carpathia", "CRP", ["Cluj", "Kosice", "Brasov", "Lviv"]),
    ("Silesia", "SIL", ["Katowice", "Wroclaw", "Ostrava", "Opole"]),
    ("Aegean", "AEG", ["Thessaloniki", "Piraeus", "Izmir", "Volos"]),
    ("Anatolia", "ANA", ["Ankara", "Konya", "Kayseri", "Bursa"]),
    ("Celtic", "CEL", ["Dublin", "Cork", "Cardiff", "Glasgow", "Belfast"]),
    ("Thames", "THA", ["Tilbury", "Reading", "Northampton", "Felixstowe"]),
    ("Loire", "LOI", ["Nantes", "Tours", "Orleans", "Angers"]),
    ("Rhone", "RHO", ["Lyon", "Marseille", "Avignon", "Grenoble", "Valence"]),
    ("Maghreb", "MAG", ["Tangier", "Casablanca", "Tunis", "Oran"]),
    ("Levant", "LEV", ["Haifa", "Beirut", "Limassol", "Aqaba"]),
]
SITE_KINDS = ["cold store", "cross-dock", "deep-freeze hub", "pharma depot", "fresh hub"]
CATEGORIES = [
    "Refrigeration failure",
    "Power outage",
    "Vehicle accident",
    "Temperature excursion",
    "IT system outage",
    "Forklift collision",
    "Door seal damage",
    "Pest sighting",
    "Flooding",
    "Labour dispute",
]
FIRST_NAMES = [
    "Ingrid", "Tomas", "Aino", "Pieter", "Lucia", "Mateo", "Sofia", "Jonas", "Elif", "Marek",
    "Ana", "Niamh", "Henrik", "Chiara", "Dimitri", "Yara", "Oskar", "Leila", "Bruno", "Mirela",
]  # fmt: skip
LAST_NAMES = [
    "Lindqvist", "Kask", "de Vries", "Schneider", "Gruber", "Etxeberria", "Moreira", "Rossi",
    "Horvat", "Novak", "Popescu", "Kowalski", "Papadopoulos", "Yilmaz", "O'Brien", "Clarke",
    "Moreau", "Benali", "Haddad", "Berger",
]  # fmt: skip
MAINTENANCE = [
    "Refrigeration service", "Compressor overhaul", "Dock leveller repair", "Sprinkler test",
    "Racking inspection", "Roof repair", "Generator load test", "Floor resurfacing",
]  # fmt: skip
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

NARRATIVE = [
    "Throughput in {region} rose {pct:.1f}% over the year, driven by {driver}.",
    "The regional team completed {n} customer audits, {m} of them unannounced.",
    "Average dock-to-stock time fell to {hours:.1f} hours after the {project} project.",
    "Energy use per pallet dropped {pct:.1f}% as {site} switched to {energy}.",
    "Management attention in the second half focused on {focus}.",
    "Customer complaints per thousand shipments stood at {ratio:.2f}, against a target of "
    "{target:.2f}.",
    "The fleet in {region} covered {km:,} km, with {ev} electric tractors in daily service.",
    "A {weeks}-week pilot of {project} at {site} is being evaluated for roll-out in 2025.",
    "Staff turnover was {pct:.1f}%, with the tightest labour market around {city}.",
    "Insurance claims closed in the year totalled EUR {eur:,}.",
]
DRIVERS = [
    "new frozen-food contracts", "pharmaceutical distribution", "e-grocery growth",
    "seasonal produce imports", "a large dairy tender",
]  # fmt: skip
PROJECTS = [
    "slotting optimisation", "yard automation", "voice picking", "predictive maintenance",
    "dock scheduling", "pallet tracking",
]  # fmt: skip
ENERGY = ["rooftop solar", "a green power contract", "CO2 refrigeration", "LED lighting"]
FOCUS = [
    "temperature compliance", "driver retention", "yard congestion", "energy costs",
    "customer onboarding", "warehouse safety",
]  # fmt: skip
INCIDENT_TEXT = {
    "Refrigeration failure": "compressor {unit} tripped; stock moved to a reserve chamber",
    "Power outage": "grid supply lost for {minutes} minutes; generator took over",
    "Vehicle accident": "trailer {unit} damaged while reversing; no injuries",
    "Temperature excursion": "chamber {unit} reached {temp} C for {minutes} minutes",
    "IT system outage": "warehouse management system unavailable for {minutes} minutes",
    "Forklift collision": "forklift {unit} struck racking; bay closed for inspection",
    "Door seal damage": "seal on dock door {unit} torn; ice build-up reported",
    "Pest sighting": "pest control called after a sighting near dock {unit}",
    "Flooding": "heavy rain flooded the yard; inbound trucks diverted",
    "Labour dispute": "night shift stopped work for {minutes} minutes pending talks",
}


@dataclass
class Incident:
    number: int
    day: date
    region: str
    site: str
    category: str
    severity: int
    downtime_h: float
    summary: str


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def narrative(rng: random.Random, region: str, sites: list[str], count: int) -> str:
    sentences = []
    for _ in range(count):
        template = rng.choice(NARRATIVE)
        sentences.append(
            template.format(
                region=region,
                pct=rng.uniform(0.5, 14),
                driver=rng.choice(DRIVERS),
                n=rng.randint(8, 60),
                m=rng.randint(1, 7),
                hours=rng.uniform(1.5, 9),
                project=rng.choice(PROJECTS),
                site=rng.choice(sites),
                energy=rng.choice(ENERGY),
                focus=rng.choice(FOCUS),
                ratio=rng.uniform(0.2, 2.5),
                target=rng.uniform(0.4, 1.5),
                km=rng.randint(1_000_000, 9_000_000),
                ev=rng.randint(0, 40),
                weeks=rng.randint(4, 16),
                city=rng.choice(sites).split(" (")[0],
                eur=rng.randint(20_000, 900_000),
            )
        )
    return " ".join(sentences)


def make_incidents(rng: random.Random, region: str, sites: list[str], first: int) -> list[Incident]:
    incidents = []
    for offset in range(rng.randint(30, 70)):
        category = rng.choices(CATEGORIES, weights=[9, 6, 5, 8, 5, 6, 4, 2, 1, 1])[0]
        severity = rng.choices([1, 2, 3, 4], weights=[1, 4, 8, 6])[0]
        downtime = round(rng.uniform(0, 2) * (5 - severity) ** 1.6, 1)
        summary = INCIDENT_TEXT[category].format(
            unit=f"{rng.choice('ABCDEFGH')}{rng.randint(1, 24)}",
            minutes=rng.randint(5, 240),
            temp=round(rng.uniform(-12, 9), 1),
        )
        incidents.append(
            Incident(
                number=first + offset,
                day=date(2024, 1, 1) + timedelta(days=rng.randint(0, 365)),
                region=region,
                site=rng.choice(sites),
                category=category,
                severity=severity,
                downtime_h=downtime,
                summary=summary,
            )
        )
    return sorted(incidents, key=lambda i: (i.day, i.number))


def region_section(
    rng: random.Random, index: int, name: str, code: str, cities: list[str], first: int
) -> tuple[str, list[Incident]]:
    sites = [
        f"{code}-{n:02d} ({city} {rng.choice(SITE_KINDS)})" for n, city in enumerate(cities, 1)
    ]
    incidents = make_incidents(rng, name, sites, first)
    lines = [
        f"SECTION {index + 2}. REGION {name.upper()}",
        "=" * 60,
        f"Regional director: {person(rng)}. Sites: {len(sites)}. "
        f"Headcount at year end: {rng.randint(180, 1400):,}.",
        "",
        "2.1 Overview",
        "",
    ]
    lines += [narrative(rng, name, sites, rng.randint(5, 9)) + "\n" for _ in range(36)]
    lines += ["2.2 Monthly volumes", "", "Month | Pallets handled | On-time % | Energy (MWh)"]
    for month in MONTHS:
        lines.append(
            f"{month} | {rng.randint(9_000, 60_000):,} | {rng.uniform(91, 99.8):.1f} | "
            f"{rng.uniform(300, 2500):,.0f}"
        )
    for site in sites:
        lines += ["", f"{site}, monthly:", "Month | Pallets | Orders picked | Reefer hours"]
        lines += [
            f"{month} | {rng.randint(2_000, 15_000):,} | {rng.randint(5_000, 90_000):,} | "
            f"{rng.randint(400, 9_000):,}"
            for month in MONTHS
        ]
    lines += ["", "2.3 Sites", ""]
    for site in sites:
        lines.append(
            f"{site}: {rng.randint(6, 60):,} thousand square metres, {rng.randint(40, 400)} "
            f"staff, managed by {person(rng)}. "
            + narrative(rng, name, sites, rng.randint(8, 14))
            + "\n"
        )
    lines += [
        "2.4 Incident log",
        "",
        "Every incident with an operational impact is logged below. Severity runs from 1 "
        "(critical: product loss or injury) to 4 (minor). Downtime is the time the affected "
        "area could not ship.",
        "",
    ]
    for incident in incidents:
        lines.append(
            f"INC-2024-{incident.number:04d} | {incident.day.isoformat()} | {incident.site} | "
            f"Category: {incident.category} | Severity: {incident.severity} | "
            f"Downtime: {incident.downtime_h} h | {incident.summary}."
        )
    lines += [
        "",
        "2.5 Planned maintenance",
        "",
        "Planned work is not an incident: its downtime is scheduled and agreed with customers.",
        "",
    ]
    for number in range(rng.randint(25, 45)):
        day = date(2024, 1, 1) + timedelta(days=rng.randint(0, 365))
        lines.append(
            f"MNT-{code}-{number + 1:03d} | {day}"
            f" | {rng.choice(sites)} | {rng.choice(MAINTENANCE)} | "
            f"Planned downtime: {round(rng.uniform(0.5, 12), 1)} h"
        )
    lines += ["", "2.6 Customers and contracts", ""]
    lines += [narrative(rng, name, sites, rng.randint(4, 8)) + "\n" for _ in range(28)]
    lines += ["2.7 Outlook", "", narrative(rng, name, sites, 8), "", ""]
    return "\n".join(lines), incidents


def appendix(rng: random.Random) -> str:
    lines = ["SECTION 22. APPENDICES", "=" * 60, "", "A. Glossary", ""]
    terms = ["GDP", "HACCP", "WMS", "ATP", "cross-dock", "dwell time", "OTIF", "reefer"]
    lines += [f"{term}: {narrative(rng, 'the group', ['Bergen'], 2)}" for term in terms]
    lines += ["", "B. Method notes", ""]
    lines += [narrative(rng, "the group", ["Lyon", "Riga"], 9) + "\n" for _ in range(10)]
    return "\n".join(lines)


def build(rng: random.Random) -> tuple[str, list[Incident], dict[str, str]]:
    parts = [
        f"{COMPANY.upper()}\nANNUAL OPERATIONS REPORT 2024\n",
        "SECTION 1. GROUP SUMMARY\n" + "=" * 60 + "\n",
    ]
    parts += [narrative(rng, "the group", ["Rotterdam", "Lyon"], 8) + "\n" for _ in range(8)]
    incidents: list[Incident] = []
    sections: list[str] = []
    for index, (name, code, cities) in enumerate(REGIONS):
        text, found = region_section(rng, index, name, code, cities, len(incidents) + 1)
        sections.append(text)
        incidents += found
    # One needle: a single site's certification suspension, stated once mid-document.
    region_index = rng.randrange(len(REGIONS))
    name, code, cities = REGIONS[region_index]
    city = rng.choice(cities)
    site_code = f"{code}-{cities.index(city) + 1:02d}"
    suspended = date(2024, 1, 1) + timedelta(days=rng.randint(120, 300))
    needle = (
        f"Compliance note: following the audit of site {site_code} ({city}), the national "
        f"regulator suspended its GDP certification for pharmaceutical storage on "
        f"{suspended.isoformat()}; pharma volumes were moved to neighbouring sites.\n"
    )
    marker = "2.4 Incident log"
    sections[region_index] = sections[region_index].replace(marker, needle + "\n" + marker)
    parts += sections
    parts.append(appendix(rng))
    facts = {"gdp_site": site_code, "gdp_city": city, "gdp_date": suspended.isoformat()}
    return "\n".join(parts) + "\n", incidents, facts


def expected_answers(incidents: list[Incident], facts: dict[str, str]) -> list[dict[str, str]]:
    critical: dict[str, int] = {}
    for incident in incidents:
        if incident.severity == 1:
            critical[incident.region] = critical.get(incident.region, 0) + 1
    top = max(critical.values())
    leaders = [region for region, count in critical.items() if count == top]
    # The seed is chosen so the sample query has one right region, not a tie.
    assert len(leaders) == 1, f"seed {SEED} gives a tie: {leaders}"
    refrigeration = sum(i.downtime_h for i in incidents if i.category == "Refrigeration failure")
    return [
        {
            "query": "How many severity-1 incidents were logged in 2024 across all regions, "
            "and which region logged the most of them?",
            "answer": f"{sum(critical.values())} severity-1 incidents; most in "
            f"{leaders[0]} ({top})",
        },
        {
            "query": "What was the total downtime, in hours, caused by refrigeration "
            "failures across the whole company in 2024?",
            "answer": f"{refrigeration:.1f} hours",
        },
        {
            "query": "Which site had its GDP certification suspended, and on what date?",
            "answer": f"{facts['gdp_site']} ({facts['gdp_city']}), on {facts['gdp_date']}",
        },
    ]


def main() -> None:
    document, incidents, facts = build(random.Random(SEED))
    OUT_DIR.mkdir(exist_ok=True)
    DOCUMENT.write_text(document, encoding="utf-8")
    answers = {"seed": SEED, "samples": expected_answers(incidents, facts)}
    ANSWERS.write_text(json.dumps(answers, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {DOCUMENT} ({len(document.encode()):,} bytes, {len(incidents)} incidents)")


if __name__ == "__main__":
    main()
