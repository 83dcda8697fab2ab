"""Every case of the dialect corpus, replayed through the real loop and a real sandbox,
ends as the case expects: the answer, how it finished, the blocks that failed."""

from __future__ import annotations

import pytest

from tests.dialects.replay import Case, load_corpus, missing_modules, replay

CASES = load_corpus()


def test_the_corpus_covers_recorded_and_hand_written_cases() -> None:
    kinds = {case.kind for case in CASES}
    assert kinds == {"recorded", "hand-written"}
    assert len({(case.source, case.id) for case in CASES}) == len(CASES)


@pytest.mark.container
@pytest.mark.parametrize("case", CASES, ids=[f"{c.source}/{c.id}" for c in CASES])
async def test_case_replays_as_expected(case: Case) -> None:
    assert not missing_modules(case, "container")
    done = await replay(case, "container")
    assert done.problems == []
