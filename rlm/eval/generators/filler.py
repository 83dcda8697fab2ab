"""Haystack text for needle tasks: RULER-style noise, and essay-like prose from word lists.

Both are built by repeating or sampling a small pool of sentences, so a 64 MB haystack
takes about a second: the cost is one `join` over references, never per-word work.
None of the words below can form a needle ("special magic number") or a needle key
(keys are hyphenated, filler never is).
"""

from __future__ import annotations

import random

NOISE = (
    "The river runs to the sea. The hills are quiet at noon. The lamp is on. "
    "Here we go again. Round and round it goes. "
)

ADJECTIVES = (
    "ancient", "bright", "careful", "distant", "early", "famous", "gentle", "hidden",
    "honest", "narrow", "patient", "quiet", "rapid", "remote", "restless", "silent",
    "simple", "steady", "strange", "sudden", "tired", "warm", "wild", "young",
)  # fmt: skip
NOUNS = (
    "archive", "bridge", "castle", "city", "council", "engine", "experiment", "factory",
    "farmer", "garden", "harbour", "island", "journal", "library", "merchant", "mountain",
    "painter", "railway", "river", "scholar", "school", "ship", "teacher", "village",
)  # fmt: skip
IDEAS = (
    "ambition", "attention", "courage", "curiosity", "doubt", "habit", "history", "memory",
    "patience", "progress", "silence", "taste", "trust", "wealth", "work", "youth",
)  # fmt: skip
VERBS = (
    "changed", "described", "followed", "ignored", "improved", "measured", "outlived",
    "praised", "questioned", "rebuilt", "remembered", "shaped", "studied", "visited",
)  # fmt: skip
ADVERBS = (
    "almost", "barely", "clearly", "eventually", "largely", "often", "quietly", "rarely",
    "slowly", "surely",
)  # fmt: skip
TEMPLATES = (
    "The {adj} {noun} {verb} the {noun2} {adv}.",
    "Nobody expected that {idea} would matter so much to the {noun}.",
    "In the end, {idea} is what the {adj} {noun} {verb}.",
    "Most people who {verb} the {noun} {adv} forgot about {idea}.",
    "It is {adv} said that {idea} and {idea2} grow together.",
    "When the {noun} was {adj}, the {noun2} {verb} it {adv}.",
    "What the {noun} taught us about {idea} was {adv} simple.",
    "One {adj} {noun} is worth more than any number of {adj2} plans.",
    "There was a time when every {noun} {verb} its own {idea}.",
    "Ask any {noun} and it will tell you that {idea} is {adj}.",
)


def noise(n_chars: int) -> str:
    """`n_chars` of the same few sentences repeated, as RULER's noise haystack."""
    return (NOISE * (n_chars // len(NOISE) + 1))[:n_chars]


def essay(rng: random.Random, n_chars: int) -> str:
    """About `n_chars` (never more) of essay-like paragraphs sampled from a seeded pool."""
    sentences = [_sentence(rng) for _ in range(2000)]
    paragraphs = [" ".join(rng.choices(sentences, k=rng.randint(3, 8))) for _ in range(400)]
    mean = sum(map(len, paragraphs)) / len(paragraphs) + 2
    # Draw a little more than needed in one go; the rare shortfall is topped up.
    parts = rng.choices(paragraphs, k=int(n_chars / mean * 1.05) + 1)
    text = "\n\n".join(parts)
    while len(text) < n_chars:
        text += "\n\n" + "\n\n".join(rng.choices(paragraphs, k=len(parts) // 20 + 1))
    return text[:n_chars]


def _sentence(rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    return template.format(
        adj=rng.choice(ADJECTIVES),
        adj2=rng.choice(ADJECTIVES),
        noun=rng.choice(NOUNS),
        noun2=rng.choice(NOUNS),
        idea=rng.choice(IDEAS),
        idea2=rng.choice(IDEAS),
        verb=rng.choice(VERBS),
        adv=rng.choice(ADVERBS),
    )
