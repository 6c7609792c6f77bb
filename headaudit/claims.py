"""The hand-written report's claims, as data, and how measured verdicts bear on them.

``shared/spec/original_report_zh.md`` is the report this tool replaces. Each record names
the checks that judge it: ``core`` checks (a failure refutes the claim) and ``caveats``
(a failure qualifies it), all read on the subject the claim is about (``judged_on``,
the candidate: the "fixed" file). Claim 1.4 also rests on a premise about the baseline
(that its contrastive term conflicted with diversity); a :class:`Premise` reads that
from the evidence of a check run on the baseline. Checks never know about claims or
roles: what a verdict means for a claim is decided here. Where part of a refuted claim's gap
is one no fix can close (a :class:`Limit`, read from a check's evidence), the claim's text
says so; the check's verdict is never softened for it.

The texts (title, what the report says, its verdict) are in the message catalogues under
``claim.<ref>.*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from headaudit.messages import Msg
from headaudit.model import ClaimPart, ClaimResult, ClaimVerdict, Json, Result

__all__ = ["CLAIMS", "SECTIONS", "Claim", "Limit", "Premise", "judge_claim", "judge_claims"]

#: Section number -> message id of its heading (一 theory, 二 engineering).
SECTIONS: dict[int, str] = {1: "section.theory", 2: "section.engineering"}

_NOT_RUN = ("n/a", "error", "not-run")


@dataclass(frozen=True)
class Premise:
    """A claim's premise about another subject, read from one check's pair table.

    Holds when any table of ``check``'s evidence on ``subject`` classifies ``pair`` as
    ``expects``; refuted when tables classify it otherwise; unknown when none does.
    """

    check: str
    subject: str
    pair: str
    expects: str

    def evaluate(self, result: Result | None) -> dict[str, Json]:
        measured: list[str] = []
        evidence = result.evidence if result is not None else None
        if isinstance(evidence, Mapping):
            for table in evidence.get("tables", []) or []:
                for row in table.get("pairs", []):
                    if row.get("pair") == self.pair and row.get("relation") not in (None, "inactive"):
                        measured.append(str(row["relation"]))
        holds: bool | None = (self.expects in measured) if measured else None
        return {
            "check": self.check,
            "subject": self.subject,
            "pair": self.pair,
            "expected": self.expects,
            "measured": measured,
            "holds": holds,
        }


@dataclass(frozen=True)
class Limit:
    """A part of a claim's gap that no fix of the subject can close, read from one check's evidence.

    Applies when ``check`` failed on the judged subject and its evidence names items under
    ``key`` (e.g. ``compat.checkpoint``'s ``changed_modules``: submodules redesigned under the
    same name, whose weights no key mapping carries). The claim's text then adds the
    sentence ``message`` with those ``items``; the verdicts stay what was measured.
    """

    check: str
    key: str
    message: str

    def note(self, result: Result | None) -> Msg | None:
        if result is None or result.verdict != "fail" or not isinstance(result.evidence, Mapping):
            return None
        items = result.evidence.get(self.key)
        if not items:
            return None
        return Msg(self.message, {"check": self.check, "items": [f"`{item}`" for item in items]})


@dataclass(frozen=True)
class Claim:
    ref: str
    section: int
    core: tuple[str, ...]
    caveats: tuple[str, ...] = ()
    judged_on: str = "candidate"
    premise: Premise | None = None
    limits: tuple[Limit, ...] = ()

    @property
    def checks(self) -> tuple[str, ...]:
        return (*self.core, *self.caveats) + ((self.premise.check,) if self.premise else ())

    def title(self) -> Msg:
        return Msg(f"claim.{self.ref}.title")


CLAIMS: tuple[Claim, ...] = (
    Claim("1.1", 1, core=("contrastive.pairs", "contrastive.value")),
    Claim("1.2", 1, core=("gate.convex", "gate.sum-to-one")),
    Claim(
        "1.3",
        1,
        core=("ema.standard", "ema.isolation"),
        caveats=("ema.unit-norm", "ema.initial-norm"),
    ),
    Claim(
        "1.4",
        1,
        core=("losses.conflicts",),
        premise=Premise("losses.conflicts", "baseline", "diversity/contrastive", "conflict"),
    ),
    Claim("2.1", 2, core=("host.loss-dict",)),
    Claim(
        "2.2",
        2,
        core=("compat.forward", "compat.constructor", "compat.manager-api", "compat.checkpoint"),
        limits=(Limit("compat.checkpoint", "changed_modules", "claim.2.2.beyond_fix"),),
    ),
    Claim("2.3", 2, core=("shapes.global-3d",)),
    Claim(
        "2.4",
        2,
        core=("contrastive.tiny", "edges.cluster-empty"),
        caveats=("edges.small-batches", "edges.zero-prototypes"),
    ),
    Claim("2.5", 2, core=("trainer.detect", "trainer.step")),
)


def _parts(ids: Iterable[str], by_check: Mapping[str, Result]) -> tuple[ClaimPart, ...]:
    return tuple(ClaimPart(c, by_check[c].verdict if c in by_check else "not-run") for c in ids)


def judge_claim(claim: Claim, results: Iterable[Result]) -> ClaimResult:
    """The measured verdict on ``claim`` from this run's results.

    ``refuted`` when a core check fails or the premise is false (even if other checks did
    not run); ``not-judged`` when no core check ran; ``partly-measured`` when some did not
    (named); ``caveats`` when every core check ran and passed but a core check warned or
    a caveat check failed or warned (named); else ``confirmed``.
    """
    results = list(results)
    on_subject = {r.check: r for r in results if r.subject == claim.judged_on}
    core, caveats = _parts(claim.core, on_subject), _parts(claim.caveats, on_subject)
    premise = None
    if claim.premise is not None:
        source = next(
            (r for r in results if r.check == claim.premise.check and r.subject == claim.premise.subject), None
        )
        premise = claim.premise.evaluate(source)
    failed = [p.check for p in core if p.verdict == "fail"]
    missing = [p.check for p in core if p.verdict in _NOT_RUN]
    qualified = [p.check for p in core if p.verdict == "warn"] + [
        p.check for p in caveats if p.verdict in ("fail", "warn")
    ]
    verdict: ClaimVerdict
    if failed or (premise is not None and premise["holds"] is False):
        verdict, message = "refuted", Msg("claim.verdict.refuted", {"checks": failed})
        if premise is not None and premise["holds"] is False:
            params = {
                "checks": failed or "-",
                "pair": premise["pair"],
                "subject": Msg(f"role.{premise['subject']}"),
                "measured": [Msg(f"relation.{r}") for r in dict.fromkeys(premise["measured"])],
            }
            message = Msg("claim.verdict.refuted_premise", params)
    elif len(missing) == len(core):
        verdict, message = "not-judged", Msg("claim.verdict.not_judged", {"checks": missing})
    elif missing or (premise is not None and premise["holds"] is None):
        verdict, message = "partly-measured", Msg("claim.verdict.partly_measured", {"checks": missing})
    elif qualified:
        verdict, message = "caveats", Msg("claim.verdict.caveats", {"checks": qualified})
    else:
        verdict, message = "confirmed", Msg("claim.verdict.confirmed", {"checks": list(claim.core)})
    notes = [n for limit in claim.limits if (n := limit.note(on_subject.get(limit.check))) is not None]
    if notes:
        message = Msg("claim.verdict.with_limits", {"verdict": message, "limits": notes})
    return ClaimResult(claim.ref, verdict, claim.judged_on, core, caveats, message, premise)


def judge_claims(results: Iterable[Result]) -> tuple[ClaimResult, ...]:
    results = list(results)
    return tuple(judge_claim(claim, results) for claim in CLAIMS)
