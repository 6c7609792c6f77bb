"""The usage advice of the report (section 四), derived from the results.

The original report recommends a configuration (its 4.1, ``BEHAVIOR.md`` section 6) and
an edit of the host (its 4.2). Neither is repeated on trust:

- :func:`judge_configuration`: the configuration is recommended only when every claim of
  the original report it rests on (:data:`CONFIGURATION_CLAIMS`) is confirmed and every
  finding the original missed (the checks of group ``missed``) passes on the subject whose
  head class is the recommended one; otherwise the advice names what stands in the way;
- :func:`judge_host_fix`: a host edit is recommended only in a form whose cells of the
  ``host.loss-dict`` matrix all work in this run, on every subject it ran on: no cell
  raises, none could not run, and no term the head returns is dropped by the host (a
  head that returns no breakdown cannot have one kept). The report's own suggested edit is
  judged by the same cells;
- :func:`judge_checkpoint`: what loading a head.py checkpoint into each subject's
  compatibility head needs, from ``compat.checkpoint``'s evidence: what a fix can give
  (renamed keys to map, other left-over keys to keep, consume or drop in a load hook) and
  what no fix can give (weights of submodules redesigned under the same name). The
  check's verdict stays what happened (a strict load that raises is ``fail``); this text
  says which part of the gap a fix can close.

Pure functions of a :class:`~headaudit.model.Report`; no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headaudit.messages import Msg
from headaudit.model import Report, Result

__all__ = [
    "CHECKPOINT_CHECK",
    "CONFIGURATION_CLAIMS",
    "HOST_CHECK",
    "CheckpointAdvice",
    "ConfigurationAdvice",
    "HostFixAdvice",
    "cell_messages",
    "judge_checkpoint",
    "judge_configuration",
    "judge_host_fix",
    "recommended_configuration",
    "role_msg",
]

#: The claims of the original report a recommendation of ``HeadOptimal`` rests on: its
#: theory (1.1-1.4) and its engineering claims about that class (2.1, 2.3-2.5). Claim 2.2
#: is about the compatibility ``Head``, which the configuration does not use.
CONFIGURATION_CLAIMS = ("1.1", "1.2", "1.3", "1.4", "2.1", "2.3", "2.4", "2.5")
HOST_CHECK = "host.loss-dict"
CHECKPOINT_CHECK = "compat.checkpoint"

Json = Any


def role_msg(role: str) -> Msg | str:
    """A subject's role as a message (the two standard roles are translated; others are names)."""
    return Msg(f"role.{role}") if role in ("baseline", "candidate") else role


def cell_messages(cells: Sequence[Mapping[str, Json]]) -> list[Msg]:
    """Cells of the host matrix (as in the evidence) as sentences, one per host, head and outcome.

    Cells that differ only in their mode share a sentence listing the modes; a cell that
    names the subject it was measured on (``"subject"``: a role) says so.
    """
    groups: dict[tuple[Any, ...], list[str]] = {}
    for cell in cells:
        key = (
            cell.get("subject"),
            cell.get("host"),
            cell.get("head", ""),
            cell.get("outcome"),
            cell.get("lost_in"),
            cell.get("detail") or "",
            tuple(cell.get("lost", ())),
        )
        groups.setdefault(key, []).append(str(cell.get("mode")))
    out = []
    for (subject, host, head, outcome, lost_in, detail, lost), modes in groups.items():
        params = {
            "host": Msg(f"report.engineering.variant.{host}"),
            "head": head,
            "subject": Msg("report.engineering.on", {"role": role_msg(str(subject))}) if subject else "",
            "modes": [Msg(f"report.engineering.mode.{m}") for m in modes],
            "detail": detail,
            "lost": list(lost),
        }
        msg_id = f"{outcome}_{lost_in}" if outcome == "loses-breakdown" else str(outcome)
        out.append(Msg(f"report.engineering.cell.{msg_id}", params))
    return out


def recommended_configuration() -> tuple[str, Mapping[str, object]]:
    """``(head class, keywords)`` the original report recommends (its section 4.1)."""
    from headaudit.reference.recommended import RECOMMENDED_HEAD_CLASS, RECOMMENDED_KWARGS

    return RECOMMENDED_HEAD_CLASS, dict(RECOMMENDED_KWARGS)


@dataclass(frozen=True)
class ConfigurationAdvice:
    head_class: str
    keywords: Mapping[str, object]
    subject: str | None  # the role whose head class is the recommended one (None: no such subject)
    claims: tuple[tuple[str, str], ...]  # (claim, verdict) of the claims it rests on
    findings: tuple[tuple[str, str], ...]  # (check, verdict) of the missed findings on that subject

    @property
    def blocking_claims(self) -> list[tuple[str, str]]:
        return [(ref, v) for ref, v in self.claims if v != "confirmed"]

    @property
    def blocking_findings(self) -> list[tuple[str, str]]:
        return [(c, v) for c, v in self.findings if v != "pass"]

    @property
    def recommended(self) -> bool:
        return self.subject is not None and not self.blocking_claims and not self.blocking_findings


def judge_configuration(report: Report) -> ConfigurationAdvice:
    head_class, keywords = recommended_configuration()
    subject = next((s.role for s in report.subjects if s.head_class == head_class), None)
    claims = tuple(
        (ref, claim.verdict if (claim := report.claim(ref)) is not None else "not-judged")
        for ref in CONFIGURATION_CLAIMS
    )
    missed = [c.id for c in report.checks if c.group == "missed"]
    findings = tuple(
        (check, r.verdict)
        for check in missed
        if subject is not None and (r := report.result(check, subject)) is not None
    )
    return ConfigurationAdvice(head_class, keywords, subject, claims, findings)


@dataclass(frozen=True)
class HostFixAdvice:
    """What the ``host.loss-dict`` matrices of this run say about the two host edits."""

    ran: tuple[str, ...]  # the roles whose host.loss-dict measured a matrix
    suggested_cells: tuple[Mapping[str, Json], ...]  # every cell of the report's suggested edit
    fixed_cells: tuple[Mapping[str, Json], ...]  # every cell of the edit unpacking by the return
    fixed_path: str | None
    fixed_sha256: str | None
    fixed_source: str | None

    @staticmethod
    def works(cell: Mapping[str, Json]) -> bool:
        """A cell that works for the host: it ran, and the host dropped nothing the head returned."""
        outcome = cell.get("outcome")
        return outcome == "works" or (outcome == "loses-breakdown" and cell.get("lost_in") == "head")

    @property
    def suggested_failures(self) -> list[Mapping[str, Json]]:
        return [c for c in self.suggested_cells if not self.works(c)]

    @property
    def fixed_failures(self) -> list[Mapping[str, Json]]:
        return [c for c in self.fixed_cells if not self.works(c)]

    @property
    def recommended(self) -> bool:
        return bool(self.ran) and bool(self.fixed_cells) and not self.fixed_failures


def _host(result: Result, variant: str) -> Mapping[str, Json] | None:
    evidence = result.evidence if isinstance(result.evidence, Mapping) else {}
    return next((h for h in evidence.get("hosts", []) or [] if h.get("variant") == variant), None)


def judge_host_fix(report: Report) -> HostFixAdvice:
    results = [r for r in report.results if r.check == HOST_CHECK and r.verdict != "error" and _host(r, "fixed")]
    suggested: list[Mapping[str, Json]] = []
    fixed: list[Mapping[str, Json]] = []
    path = sha = source = None
    for r in results:
        for variant, into in (("suggested", suggested), ("fixed", fixed)):
            host = _host(r, variant)
            if host is not None:
                into.extend({**c, "subject": r.subject} for c in host.get("cells", []))
        fixed_host = _host(r, "fixed") or {}
        path, sha = fixed_host.get("path"), fixed_host.get("sha256")
        source = fixed_host.get("forward_source") or source
    return HostFixAdvice(tuple(r.subject for r in results), tuple(suggested), tuple(fixed), path, sha, source)


@dataclass(frozen=True)
class CheckpointAdvice:
    """What loading a head.py checkpoint into one subject's compatibility head needs."""

    role: str
    loads: bool  # load_state_dict(strict=True) succeeded
    renamed: tuple[str, ...]  # "checkpoint key -> head key": a mapping a fix can give
    other: tuple[str, ...]  # other left-over keys (buffers, removed parts): a fix can keep, consume or drop them
    redesigned: tuple[str, ...]  # submodules redesigned under the same name: no fix carries their weights


def _under(key: str, modules: Sequence[str]) -> bool:
    return any(key.startswith(f"{m}.") for m in modules)


def judge_checkpoint(report: Report) -> tuple[CheckpointAdvice, ...]:
    """One record per subject whose ``compat.checkpoint`` measured a load (pass or fail)."""
    out = []
    for subject in report.subjects:
        r = report.result(CHECKPOINT_CHECK, subject.role)
        if r is None or r.verdict not in ("pass", "fail") or not isinstance(r.evidence, Mapping):
            continue
        evidence = r.evidence
        pairs = [tuple(p) for p in evidence.get("renamed", []) or []]
        mapped = {k for p in pairs for k in p}
        redesigned = tuple(evidence.get("changed_modules", []) or [])
        left = [*(evidence.get("missing", []) or []), *(evidence.get("unexpected", []) or [])]
        other = tuple(sorted(k for k in left if k not in mapped and not _under(k, redesigned)))
        renamed = tuple(f"{a} -> {b}" for a, b in pairs)
        out.append(CheckpointAdvice(subject.role, r.verdict == "pass", renamed, other, redesigned))
    return tuple(out)
