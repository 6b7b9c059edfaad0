"""The rules for an ambiguous create: adopt only on proof, resend only after repeated empty searches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.jobs.reconcile import (
    CLOCK_SKEW,
    Adopt,
    Attempt,
    Candidate,
    Evidence,
    NothingFound,
    Wait,
    by_request_id,
    decide,
    overlaps,
)
from app.providers.base import ListedTask, ProviderTask, TaskState

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=30)


def listed(task_id: str, at: datetime = T0, request_id: str | None = None) -> ListedTask:
    return ListedTask(
        task_id=task_id, model="m", state=TaskState.RUNNING, created_at=at, request_id=request_id
    )


def candidate(
    task_id: str, prompt: str | None, state: TaskState = TaskState.SUCCEEDED, at: datetime = T0
) -> Candidate:
    return Candidate(listed(task_id, at), ProviderTask(task_id=task_id, state=state, orig_prompt=prompt))


def evidence(*candidates: Candidate, prompt: str | None = "a cat", overlap: bool = False) -> Evidence:
    return Evidence(
        candidates=list(candidates), our_prompt=prompt, attempt_at=T0, other_creates_overlap=overlap
    )


def test_the_create_request_id_is_proof() -> None:
    tasks = [listed("a", request_id="r1"), listed("b", request_id="r2")]
    decision = by_request_id(tasks, "r2")
    assert isinstance(decision, Adopt) and decision.task.task_id == "b"
    assert by_request_id(tasks, "r9") is None
    assert by_request_id(tasks, None) is None


def test_a_matching_prompt_wins_and_a_strangers_task_is_never_taken() -> None:
    decision = decide(evidence(candidate("stranger", "a dog"), candidate("mine", "a cat")))
    assert isinstance(decision, Adopt) and decision.task.task_id == "mine"
    assert isinstance(decide(evidence(candidate("stranger", "a dog"))), NothingFound)


def test_nearest_of_several_matching_tasks() -> None:
    far = candidate("far", "a cat", at=T0 + timedelta(seconds=50))
    near = candidate("near", "a cat", at=T0 + timedelta(seconds=2))
    decision = decide(evidence(far, near))
    assert isinstance(decision, Adopt) and decision.task.task_id == "near"


def test_an_undecidable_task_is_waited_for_not_adopted() -> None:
    running = candidate("x", None, TaskState.RUNNING)
    assert isinstance(decide(evidence(running)), Wait)  # its prompt shows once it succeeds
    finished = candidate("x", None, TaskState.FAILED)
    assert isinstance(decide(evidence(finished)), Adopt)  # alone and done: nothing better will come
    assert isinstance(decide(evidence(finished, overlap=True)), Wait)  # another create may own it
    assert isinstance(decide(evidence(finished, candidate("y", None, TaskState.FAILED))), Wait)


def test_template_jobs_without_prompt_adopt_only_a_lone_finished_task() -> None:
    assert isinstance(decide(evidence(candidate("x", None, TaskState.SUCCEEDED), prompt=None)), Adopt)
    assert isinstance(
        decide(evidence(candidate("x", "other", TaskState.SUCCEEDED), prompt=None)), NothingFound
    )


def test_resend_needs_two_empty_searches_and_grace_after_the_attempt() -> None:
    attempt = Attempt(sent_at=T0, answered_at=T0 + timedelta(seconds=30))
    once = attempt.searched_empty(T0 + timedelta(seconds=31))
    assert not once.may_resend(T0 + timedelta(hours=1), GRACE)  # one search is not enough
    twice = once.searched_empty(T0 + timedelta(seconds=45))
    assert not twice.may_resend(T0 + timedelta(seconds=45), GRACE)  # too soon after the first empty search
    assert twice.may_resend(T0 + timedelta(seconds=61), GRACE)


def test_a_crash_mid_create_counts_grace_from_the_first_search() -> None:
    attempt = (
        Attempt(sent_at=T0)
        .searched_empty(T0 + timedelta(minutes=5))
        .searched_empty(T0 + timedelta(minutes=5, seconds=10))
    )
    assert not attempt.may_resend(T0 + timedelta(minutes=5, seconds=20), GRACE)
    assert attempt.may_resend(T0 + timedelta(minutes=5, seconds=31), GRACE)


def test_window_follows_the_attempt_and_round_trips() -> None:
    attempt = Attempt(sent_at=T0, answered_at=T0 + timedelta(seconds=10), request_id="r")
    assert attempt.window(T0 + timedelta(hours=1)) == (
        T0 - CLOCK_SKEW,
        T0 + timedelta(seconds=10) + CLOCK_SKEW,
    )
    unanswered = Attempt(sent_at=T0)
    now = T0 + timedelta(minutes=3)
    assert unanswered.window(now)[1] == now + CLOCK_SKEW  # died mid-create: up to now
    assert Attempt.load(attempt.dump(), claimed_at=T0 - timedelta(days=1)) == attempt
    assert Attempt.load(None, claimed_at=T0).sent_at == T0


def test_overlap() -> None:
    a = (T0, T0 + timedelta(seconds=10))
    assert overlaps(a, (T0 + timedelta(seconds=5), T0 + timedelta(seconds=20)))
    assert not overlaps(a, (T0 + timedelta(seconds=11), T0 + timedelta(seconds=20)))
