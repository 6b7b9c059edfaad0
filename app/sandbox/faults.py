"""Fault injection: the rule grammar of SANDBOX_FAULTS, the live rule set, and per-task outcomes.

    rule   := target ":" action ["/" arg] ["=" probability] ["*" times]
    target := create | get | cancel | list | policy | upload | download   (answer the request itself)
            | create_after                      (create the task, then answer with the fault)
            | task                              (decided at create time, persisted with the task)

Request actions: an HTTP status 400–599 (arg: the error code, e.g. `500/ModelServingError`; 502 and 504
answer an HTML page), `slow/<seconds>` (delay, then answer normally), `drop` (start a response and close
the connection). Task actions: `FAILED[/<code>]`, `UNKNOWN`, `stuck` (RUNNING forever), `slow/<factor>`,
and what a SUCCEEDED task serves: `duration/<seconds>` (a video of that length, whatever was asked),
`size/<W>x<H>` (of that frame size), `corrupt` (a complete MP4 whose middle is zeroed); and
`nul` (the task's text answers carry U+0000 and a lone surrogate: what a gateway must store anyway).
Examples: `create:429=0.3,get:502=0.1,task:FAILED/InternalError=0.1,create_after:500*1`.

A prompt can force a task's outcome too: `[sandbox:FAILED/DataInspectionFailed]`, `[sandbox:UNKNOWN]`,
`[sandbox:stuck]`, `[sandbox:slow/3]`, `[sandbox:duration/5]`, `[sandbox:size/640x360]`, `[sandbox:corrupt]`,
`[sandbox:nul]` (markers combine).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from app.providers.base import TaskState
from app.sandbox.errors import CODE_MESSAGES

REQUEST_TARGETS = ("create", "get", "cancel", "list", "policy", "upload", "download")
TARGETS = (*REQUEST_TARGETS, "create_after", "task")
TASK_ACTIONS = ("FAILED", "UNKNOWN", "stuck", "slow", "duration", "size", "corrupt", "nul")
#: Bounds of a served clip (`duration/<s>`, `size/<W>x<H>`): encodable, and cheap enough to encode.
SERVED_MAX_SECONDS = 30
SERVED_MIN_SIDE, SERVED_MAX_SIDE = 16, 4096
_SERVED_SIZE = re.compile(r"^([0-9]{1,4})x([0-9]{1,4})$")
DEFAULT_FAILURE_CODE = "DataInspectionFailed"
DEFAULT_SLOW_S = 5.0
DEFAULT_SLOW_FACTOR = 3.0

_RULE = re.compile(
    r"^(?P<target>[a-z_]+):(?P<action>[A-Za-z0-9]+)(?:/(?P<arg>[A-Za-z0-9_.\-]+))?"
    r"(?:=(?P<probability>[0-9]*\.?[0-9]+))?(?:\*(?P<times>[0-9]+))?$"
)
_PROMPT_MARKER = re.compile(r"\[sandbox:([^\]]+)\]")


@dataclass
class FaultRule:
    """One rule. `times` counts down each time the rule fires; at 0 the rule is spent and removed."""

    target: str
    action: str
    arg: str | None = None
    probability: float = 1.0
    times: int | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown fault target {self.target!r} (one of {', '.join(TARGETS)})")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault probability must be in [0, 1], got {self.probability}")
        if self.times is not None and self.times < 0:
            raise ValueError("fault times must be >= 0")
        if self.target == "task":
            by_lower = {action.lower(): action for action in TASK_ACTIONS}
            action = by_lower.get(self.action.lower())
            if action is None:
                raise ValueError(f"unknown task fault {self.action!r} (one of {', '.join(TASK_ACTIONS)})")
            self.action = action
        elif self.action.lower() in ("slow", "drop"):
            self.action = self.action.lower()
        elif not (self.action.isdigit() and 400 <= int(self.action) <= 599):
            raise ValueError(f"unknown request fault {self.action!r} (an HTTP status 400-599, slow or drop)")
        if self.action == "slow" and self.arg is not None:
            float(self.arg)  # fail at parse time, not when the rule fires
        if self.action == "duration":
            served_seconds(self.arg)
        if self.action == "size":
            served_size(self.arg)

    @property
    def name(self) -> str:
        return f"{self.target}:{self.action}"

    @property
    def status(self) -> int | None:
        return int(self.action) if self.action.isdigit() else None

    @property
    def delay_s(self) -> float:
        return float(self.arg) if self.arg else DEFAULT_SLOW_S

    def spec(self) -> str:
        text = self.name + (f"/{self.arg}" if self.arg else "")
        if self.probability != 1.0:
            text += f"={self.probability:g}"
        if self.times is not None:
            text += f"*{self.times}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "action": self.action,
            "arg": self.arg,
            "probability": self.probability,
            "times": self.times,
            "fired": self.fired,
            "spec": self.spec(),
        }


def rules_from_json(data: Mapping[str, Any]) -> list[FaultRule]:
    """Rules from a control-API object: `{"spec": "...", "probability"?, "times"?}` (the overrides apply
    to every rule of the spec) or `{"target", "action", "arg"?, "probability"?, "times"?}`."""
    overrides = {k: data[k] for k in ("probability", "times") if data.get(k) is not None}
    if "spec" in data:
        return [replace(rule, **overrides) for rule in parse_faults(str(data["spec"]))]
    arg = data.get("arg")
    return [
        FaultRule(
            target=str(data.get("target", data.get("op", ""))),
            action=str(data.get("action", "")),
            arg=None if arg is None else str(arg),
            probability=float(overrides.get("probability", 1.0)),
            times=None if overrides.get("times") is None else int(overrides["times"]),
        )
    ]


def parse_faults(text: str) -> list[FaultRule]:
    """Parse the SANDBOX_FAULTS grammar (comma-separated rules). Raises ValueError on any bad rule."""
    rules = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        match = _RULE.match(item)
        if match is None:
            raise ValueError(f"bad fault rule {item!r}: expected target:action[/arg][=probability][*times]")
        times = match["times"]
        rules.append(
            FaultRule(
                target=match["target"],
                action=match["action"],
                arg=match["arg"],
                probability=float(match["probability"]) if match["probability"] else 1.0,
                times=int(times) if times is not None else None,
            )
        )
    return rules


class FaultSet:
    """The live rules, consulted in order; the first rule for a target that wins its roll fires."""

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = list(rules)
        self._random = random.Random(seed)

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def add(self, *rules: FaultRule | str) -> list[FaultRule]:
        """Append rules (objects or grammar strings); returns the rules added."""
        added: list[FaultRule] = []
        for rule in rules:
            added += parse_faults(rule) if isinstance(rule, str) else [rule]
        self._rules += added
        return added

    def set(self, *rules: FaultRule | str) -> list[FaultRule]:
        self._rules = []
        return self.add(*rules)

    def clear(self) -> None:
        self._rules = []

    def pick(self, target: str) -> FaultRule | None:
        for rule in self._rules:
            if rule.target != target or rule.times == 0:
                continue
            if rule.probability < 1.0 and self._random.random() >= rule.probability:
                continue
            rule.fired += 1
            if rule.times is not None:
                rule.times -= 1
                if rule.times == 0:
                    self._rules.remove(rule)
            return rule
        return None


def served_seconds(arg: str | None) -> int:
    """The `duration/<seconds>` argument: a whole number of seconds, 1 to SERVED_MAX_SECONDS."""
    if arg is None or not arg.isdigit() or not 1 <= int(arg) <= SERVED_MAX_SECONDS:
        raise ValueError(f"duration/<seconds> takes 1-{SERVED_MAX_SECONDS} whole seconds, not {arg!r}")
    return int(arg)


def served_size(arg: str | None) -> tuple[int, int]:
    """The `size/<W>x<H>` argument: even sides (H.264 in yuv420p) from SERVED_MIN_SIDE to SERVED_MAX_SIDE."""
    match = _SERVED_SIZE.match(arg or "")
    sides = (int(match[1]), int(match[2])) if match else (0, 0)
    if not all(SERVED_MIN_SIDE <= side <= SERVED_MAX_SIDE and side % 2 == 0 for side in sides):
        raise ValueError(
            f"size/<W>x<H> takes even sides of {SERVED_MIN_SIDE}-{SERVED_MAX_SIDE} px, not {arg!r}"
        )
    return sides


@dataclass(frozen=True)
class Outcome:
    """How a task will end, fixed at create time (and, when it succeeds, what its video is like)."""

    state: TaskState = TaskState.SUCCEEDED
    code: str | None = None
    message: str | None = None
    stuck: bool = False
    slow_factor: float = 1.0
    served_duration: int | None = None  # seconds of the served video, when not the asked duration
    served_size: tuple[int, int] | None = None  # its frame size, when not the one the request gives
    corrupt: bool = False  # the served MP4 has its middle zeroed
    #: The `nul` fault: code/message (FAILED) and orig_prompt/actual_prompt (SUCCEEDED) carry U+0000 and
    #: a lone surrogate (lifecycle.unstorable).
    nul_text: bool = False

    def with_action(self, action: str, arg: str | None) -> Outcome:
        match action:
            case "FAILED":
                code = arg or DEFAULT_FAILURE_CODE
                message = CODE_MESSAGES.get(code, f"The task failed ({code}).")
                return replace(self, state=TaskState.FAILED, code=code, message=message)
            case "UNKNOWN":
                return replace(self, state=TaskState.UNKNOWN)
            case "stuck":
                return replace(self, stuck=True)
            case "slow":
                factor = float(arg) if arg else DEFAULT_SLOW_FACTOR
                return replace(self, slow_factor=factor)
            case "duration":
                return replace(self, served_duration=served_seconds(arg))
            case "size":
                return replace(self, served_size=served_size(arg))
            case "corrupt":
                return replace(self, corrupt=True)
            case "nul":
                return replace(self, nul_text=True)
            case _:
                raise ValueError(f"unknown task fault {action!r}")


def outcome_from_prompt(prompt: str | None, base: Outcome | None = None) -> Outcome | None:
    """Apply `[sandbox:ACTION[/arg]]` markers found in the prompt, or None when there are none."""
    markers = _PROMPT_MARKER.findall(prompt or "")
    if not markers:
        return None
    outcome = base or Outcome()
    for marker in markers:
        action, _, arg = marker.strip().partition("/")
        rule = FaultRule(target="task", action=action, arg=arg or None)  # validates like the grammar
        outcome = outcome.with_action(rule.action, rule.arg)
    return outcome
