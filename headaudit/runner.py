"""Run checks against subjects and collect a :class:`~headaudit.model.Report`.

Every (check, subject) pair gets exactly one result:

- every name the check declares is resolved on the subject first (after the user's
  maps); a missing one is ``n/a`` naming it, with the closest existing name;
- a check that runs the head then waits on the working-head step (:mod:`headaudit.working`,
  once per subject): a head that cannot train and evaluate is ``error`` for it; a check
  that reads the source only (``runs_head=False``) never depends on that step;
- the check runs with the subject's output captured and under the time budget;
- a setting that did not take effect or a name missing at run time is ``n/a``; an
  exception of the subject (``SystemExit`` included) or the budget running out is
  ``error`` with what happened; any other exception is the check's own ``error``;
- the evidence is the check's measurement, and the verdict its ``judge`` of it.

Checks receive no role: the runner alone knows which slot a subject is in. Each pair
starts from the same torch seed, so ``--only`` reproduces the result of a full run.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import sys
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import hypothesis
import torch

from headaudit import __version__
from headaudit.adapters import forward_loss_keys, proto_loss_keys
from headaudit.build import SettingNotApplied, accepts_keyword
from headaudit.claims import judge_claims
from headaudit.context import Context, NameMissing
from headaudit.errors import CheckDefinitionError
from headaudit.messages import Msg
from headaudit.model import (
    CheckInfo,
    Environment,
    Finding,
    Json,
    Report,
    Result,
    freeze_evidence,
    freeze_msg,
    to_evidence,
)
from headaudit.names import (
    Missing,
    NameMap,
    closest,
    forward_parameters,
    missing_parameter,
    split_key,
    split_module,
    split_parameter,
    walk,
)
from headaudit.precision import compared_at, dtype_name, is_reduced, recording
from headaudit.profiles import Profile
from headaudit.registry import Check
from headaudit.sandbox import CheckTimeout, SubjectRaised, captured, describe_exception, time_limit
from headaudit.subjects import Subject
from headaudit.working import not_working

if TYPE_CHECKING:
    from headaudit.cache import ResultCache
    from headaudit.hosts import HostSet
    from headaudit.parallel import Ended

__all__ = ["DEFAULT_TIMEOUT", "Pair", "ended_result", "resolve", "run_audit", "run_check", "run_pairs"]

Progress = Callable[[str], None]

#: Seconds one check may spend on one subject (``--timeout``).
DEFAULT_TIMEOUT = 120.0


@dataclass
class _Keys:
    """Loss-dict keys of a subject, found once (None: not a dict / not callable)."""

    found: dict[str, set[str] | None] = field(default_factory=dict)
    raised: dict[str, SubjectRaised] = field(default_factory=dict)


_KEY_CACHE: weakref.WeakKeyDictionary[Subject, _Keys] = weakref.WeakKeyDictionary()


def _keys(subject: Subject, source: str) -> set[str] | None:
    cache = _KEY_CACHE.setdefault(subject, _Keys())
    if source not in cache.found and source not in cache.raised:
        try:
            with captured():
                if source == "proto_loss_fn":
                    cache.found[source] = proto_loss_keys(subject.probe, subject.names)
                else:
                    cache.found[source] = forward_loss_keys(subject.probe, subject.names, subject.sizes[3])
        except SubjectRaised as exc:
            cache.raised[source] = exc
    if source in cache.raised:
        raise cache.raised[source]
    return cache.found[source]


def _find(subject: Subject, name: str) -> tuple[bool, str, str | None]:
    """``(present, the subject's name, suggestion)`` for one canonical name."""
    actual = subject.names.apply(name)
    attr = split_module(actual)
    if attr is not None:  # a module-level name of the subject's file
        if getattr(subject.module, attr, None) is not None:
            return True, actual, None
        near = closest(attr, [n for n in vars(subject.module) if not n.startswith("_")])
        return False, actual, f"module:{near}" if near else None
    param = split_parameter(actual)
    if param is not None:  # a parameter of the head's forward, read from its signature
        found, forward, _ = walk(subject.probe, subject.names.apply("forward"))
        signature = forward_parameters(forward) if found else None
        if signature is None:  # no forward (its own need says so) or one whose signature hides
            return True, actual, None
        named, takes_kwargs = signature
        if param in named or takes_kwargs:
            return True, actual, None
        return False, actual, missing_parameter(param, named, split_parameter(name))
    key = split_key(actual)
    if key is None:
        present, _, suggestion = walk(subject.probe, actual)
        return present, actual, suggestion
    keys = _keys(subject, key[0])
    if keys is not None and key[1] in keys:
        return True, actual, None
    near = closest(key[1], keys or ())
    return False, actual, f"{key[0]}[{near}]" if near else None


#: None where every map concerns the subject (a value holding its own key would never be freed).
_OWN_NAMES: weakref.WeakKeyDictionary[Subject, Subject | None] = weakref.WeakKeyDictionary()


def own_names(subject: Subject) -> Subject:
    """``subject`` with only the name maps that concern it.

    The same ``--map`` serves both subjects, and usually only one of them was renamed: an
    entry whose target this subject lacks while it has the canonical name is dropped for
    it, so comparing the original file with a renamed copy measures both. Entries whose
    target is present, or whose two names are both absent (n/a names the mapped one), stay.
    """
    if subject in _OWN_NAMES:
        return _OWN_NAMES[subject] or subject
    plain = replace(subject, names=NameMap())
    kept = tuple(
        (canonical, theirs)
        for canonical, theirs in subject.names.entries
        if _present(subject, theirs) or not _present(plain, canonical)
    )
    own = None if kept == subject.names.entries else replace(subject, names=NameMap(kept))
    _OWN_NAMES[subject] = own
    return own or subject


def _present(subject: Subject, name: str) -> bool:
    try:
        return _find(subject, name)[0]
    except SubjectRaised:  # the loss raised while its keys were listed: nothing to read there
        return False


def resolve(check: Check[Any], subject: Subject) -> tuple[dict[str, str], list[Missing]]:
    """Resolve ``check``'s declared names on ``subject``'s probe.

    Returns the present names (canonical -> the subject's own) and the missing required
    ones. Attributes are resolved first: loss-dict keys are looked up (by calling the
    subject's loss once) only when every required attribute is there. Raises
    :class:`SubjectRaised` when that call made the subject raise.
    """
    resolved: dict[str, str] = {}
    missing: list[Missing] = []
    by_keys = [need for need in check.parsed if any(split_key(subject.names.apply(a)) for a in need.alternatives)]
    # Required keys before optional ones: once a required name is missing (n/a), probing an
    # optional key (a training forward) could only turn that n/a into the subject's error.
    required_keys, optional_keys = [n for n in by_keys if not n.optional], [n for n in by_keys if n.optional]
    for stage in ([n for n in check.parsed if n not in by_keys], required_keys, optional_keys):
        if missing:
            break
        for need in stage:
            first: Missing | None = None
            for name in need.alternatives:
                present, actual, suggestion = _find(subject, name)
                if present:
                    resolved[name] = actual
                elif first is None:
                    first = Missing(name, actual, suggestion)
            if not any(name in resolved for name in need.alternatives) and not need.optional:
                assert first is not None
                missing.append(Missing(" | ".join(need.alternatives), first.looked_for, first.suggestion))
    return resolved, missing


def _missing_finding(missing: Sequence[Missing]) -> tuple[Finding, Json]:
    parts = []
    for m in missing:
        mapped = m.looked_for != m.name and "|" not in m.name
        param = split_parameter(m.name)
        if param is not None:  # named as the forward's parameter, in the words of --map
            theirs = split_parameter(m.looked_for) or m.looked_for
            key = "common.missing_param_mapped" if mapped else "common.missing_param"
            params: dict[str, Json] = {"name": m.name, "param": param, "looked_for": theirs}
            suggestion = split_parameter(m.suggestion or "") or m.suggestion
        else:
            key = "common.missing_name_mapped" if mapped else "common.missing_name"
            params = {"name": m.name, "looked_for": m.looked_for}
            suggestion = m.suggestion
        if suggestion:
            parts.append(Msg(f"{key}_suggest", {**params, "suggestion": suggestion}))
        else:
            parts.append(Msg(key, params))
    in_file = all(split_module(m.looked_for) for m in missing)  # the file lacks them, not the head
    key = "common.missing_in_file" if in_file else "common.missing"
    return Finding("n/a", Msg(key, {"names": parts})), {"missing": [m.to_dict() for m in missing]}


def _settings_finding(check: Check[Any], subject: Subject) -> tuple[Finding, Json] | None:
    refused = [s for s in check.required_settings if accepts_keyword(subject.head_cls, s) is False]
    if not refused:
        return None
    message = Msg("common.setting_refused", {"names": refused, "cls": subject.head_cls.__name__})
    return Finding("n/a", message), {"settings_not_accepted": refused}


def _measure(check: Check[Any], ctx: Context) -> tuple[Finding, Json]:
    """Run and judge one check, noting the precisions its comparisons were taken at.

    Each tolerance comes from the precision of the value it compares
    (:mod:`headaudit.precision`); the evidence lists those precisions (``compared_at``,
    coarsest first) and, when one is coarser than float32 (autocast, bfloat16 parameters),
    the sentence names the coarsest.
    """
    with recording():
        finding, evidence = _measure_recorded(check, ctx)
        compared = compared_at()
    if not compared or finding.verdict in ("n/a", "error"):
        return finding, evidence
    names = [dtype_name(d) for d in compared]
    evidence = {**evidence, "compared_at": names} if isinstance(evidence, dict) else evidence
    # a counterexample that names its comparison's precision speaks for itself
    bad = evidence.get("counterexample") if isinstance(evidence, dict) else None
    named = bad.get("precision") if isinstance(bad, dict) else None
    coarsest = getattr(torch, named) if isinstance(named, str) and named else compared[0]
    if not is_reduced(coarsest):
        return finding, evidence
    note = Msg("common.computed_in", {"message": finding.message, "dtype": dtype_name(coarsest)})
    return Finding(finding.verdict, note), evidence


def _measure_recorded(check: Check[Any], ctx: Context) -> tuple[Finding, Json]:
    """Run and judge one check; every way it can end becomes a verdict."""
    try:
        measurement = check.measure(ctx)
    except NameMissing as exc:
        return _missing_finding([Missing(exc.name, exc.looked_for, exc.suggestion)])
    except SettingNotApplied as exc:
        params = {"name": exc.name, "wanted": repr(exc.wanted), "detail": exc.detail}
        evidence = {"setting": exc.name, "wanted": repr(exc.wanted), "reason": exc.reason, "detail": exc.detail}
        return Finding("n/a", Msg(f"common.setting.{exc.reason}", params)), evidence
    except SubjectRaised as exc:
        message = Msg("common.subject_raised", {"where": exc.where, "detail": exc.detail})
        return Finding("error", message), {"where": exc.where, "exception": exc.detail}
    except CheckDefinitionError as exc:
        return Finding("error", Msg("common.check_failed", {"detail": str(exc)})), {"exception": str(exc)}
    try:
        finding = check.judge(measurement)
    except Exception as exc:
        detail = describe_exception(exc)
        return Finding("error", Msg("common.check_failed", {"detail": detail})), {"exception": detail}
    return finding, to_evidence(measurement)


def run_check(
    check: Check[Any],
    subject: Subject,
    role: str,
    *,
    seed: int,
    profile: Profile,
    timeout: float | None = DEFAULT_TIMEOUT,
    hosts: HostSet | None = None,
) -> Result:
    """One check on one subject, never raising (bar ``KeyboardInterrupt``).

    Runs single-threaded (small ops are faster so, and their rounding repeats exactly).
    ``hosts`` are the host files the host checks use (None: the bundled ones).
    """
    ctx: Context | None = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with contextlib.ExitStack() as restore:
        restore.callback(torch.set_num_threads, threads)
        finding, evidence, output, ctx = _run_guarded(check, subject, seed, profile, timeout, hosts)
    stats = ctx.stats if ctx is not None and ctx.stats.searches else None
    return Result(
        check=check.id,
        subject=role,
        verdict=finding.verdict,
        message=freeze_msg(finding.message),
        evidence=freeze_evidence(evidence),
        search=stats,
        output=output,
        headlines=check.headlines,
    )


_WORKING: weakref.WeakKeyDictionary[Subject, str | None] = weakref.WeakKeyDictionary()


def _not_working(subject: Subject) -> str | None:
    """Why ``subject`` is not a working head (:mod:`headaudit.working`), asked once per subject.

    Asked inside the check's time limit. A head that hangs there ends the check that
    asked with its timeout, and is not working for every later check (which then ends at
    once instead of waiting out its budget again).
    """
    if subject not in _WORKING:
        try:
            _WORKING[subject] = not_working(subject.head_cls, subject.sizes, subject.names)
        except CheckTimeout as exc:
            _WORKING[subject] = f"one training step and one eval pass did not end within {exc.seconds:g} s"
            raise
    return _WORKING[subject]


def _run_guarded(
    check: Check[Any], subject: Subject, seed: int, profile: Profile, timeout: float | None, hosts: HostSet | None
) -> tuple[Finding, Json, str, Context | None]:
    ctx: Context | None = None
    with captured() as output:
        try:
            with time_limit(timeout):
                subject = own_names(subject)
                try:
                    resolved, missing = resolve(check, subject)
                except SubjectRaised as exc:
                    finding = Finding("error", Msg("common.subject_raised", {"where": exc.where, "detail": exc.detail}))
                    evidence: Json = {"where": exc.where, "exception": exc.detail}
                else:
                    settings = _settings_finding(check, subject)
                    broken = _not_working(subject) if not missing and check.runs_head else None
                    if missing:
                        finding, evidence = _missing_finding(missing)
                    elif broken is not None:
                        finding = Finding("error", Msg("common.not_working", {"detail": broken}))
                        evidence = {"not_working": broken}
                    elif settings is not None:
                        finding, evidence = settings
                    else:
                        ctx = Context(
                            subject, seed, profile, check.declared, resolved, check.setting_names, host_set=hosts
                        )
                        torch.manual_seed(seed)
                        finding, evidence = _measure(check, ctx)
        except CheckTimeout as exc:
            finding = Finding("error", Msg("common.timeout", {"seconds": exc.seconds}))
            evidence = {"timeout_seconds": exc.seconds}
        except Exception as exc:  # the check's own failure
            detail = describe_exception(exc)
            finding = Finding("error", Msg("common.check_failed", {"detail": detail}))
            evidence = {"exception": detail}
    return finding, evidence, output.combined(), ctx


@dataclass(frozen=True)
class Pair:
    """One (check, subject) pair of an audit: the check, the subject's role and the subject."""

    check: Check[Any]
    role: str
    subject: Subject


def run_pairs(
    pairs: Sequence[Pair],
    *,
    seed: int,
    profile: Profile,
    timeout: float | None = DEFAULT_TIMEOUT,
    hosts: HostSet | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> list[Result]:
    """One result per pair (:func:`run_check`), in the order of ``pairs``, the same for any ``jobs``.

    First each subject's once-per-subject steps run here (:func:`_warm`), whatever
    ``jobs``: so no pair's captured output depends on whether it was the first of its
    subject to run in its process. A subject whose steps run out of time has them
    forgotten and all its pairs run here, in order: the first pair that asks meets the
    timeout, the later ones ``not working`` (its hang costs one budget more).

    ``jobs`` 1 (or a platform without ``fork``) then runs the pairs here, one after the
    other. More spreads them over that many worker processes
    (:func:`headaudit.parallel.spread`), which inherit what :func:`_warm` learned; each pair
    gets the seed it gets here, and:

    - the timed checks (``Check.timing``) run here, alone, after the others: busy workers
      would disturb their clocks;
    - a pair whose worker ended before it answered (the subject called ``os._exit`` or
      crashed the interpreter) is ``error`` saying so, and a pair that outlived its time
      limit by :func:`headaudit.parallel.grace` the timeout ``error``; the other pairs go on.
    """
    from headaudit.parallel import can_fork, grace, spread

    def tell(pair: Pair) -> None:
        if progress:
            progress(f"{pair.check.id} on {pair.role}")

    def run(pair: Pair) -> Result:
        return run_check(pair.check, pair.subject, pair.role, seed=seed, profile=profile, timeout=timeout, hosts=hosts)

    serial = jobs <= 1 or not can_fork()
    here = {i for i, pair in enumerate(pairs) if serial or pair.check.timing}
    subjects = {id(pair.subject): pair.subject for pair in pairs}
    for subject in subjects.values():
        if not _warm(subject, [p.check for p in pairs if p.subject is subject], timeout):
            here |= {i for i, pair in enumerate(pairs) if pair.subject is subject}
    away = [pairs[i] for i in range(len(pairs)) if i not in here]
    spread_out = spread(  # forks nothing when every pair runs here
        [functools.partial(run, pair) for pair in away],
        jobs=jobs,
        deadline=None if timeout is None else timeout + grace(timeout),
        ended=lambda k, how: ended_result(away[k], how, timeout),
        started=lambda k: tell(away[k]),
    )
    results = dict(zip((i for i in range(len(pairs)) if i not in here), spread_out, strict=True))
    for i in sorted(here):
        tell(pairs[i])
        results[i] = run(pairs[i])
    return [results[i] for i in range(len(pairs))]


def _warm(subject: Subject, checks: Sequence[Check[Any]], timeout: float | None) -> bool:
    """Take ``subject``'s once-per-subject steps here: its own name maps, the keys of its
    losses that ``checks`` name, and whether it is a working head. False when they did not
    end within ``timeout`` (they are forgotten then, and its pairs must run here, in order).

    Run before any pair (and before the workers fork, so each inherits the outcome). What
    the subject prints here belongs to no pair, and is not kept. A step that raised is
    cached as the pair that asks first would cache it; any other failure is left to the pairs.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with captured():
            try:
                with time_limit(timeout):
                    own = own_names(subject)
                    sources = {
                        key[0]
                        for check in checks
                        for need in check.parsed
                        for name in need.alternatives
                        if (key := split_key(own.names.apply(name))) is not None
                    }
                    for source in sorted(sources):
                        with contextlib.suppress(SubjectRaised):
                            _keys(own, source)
                    if any(check.runs_head for check in checks):
                        _not_working(own)
            except CheckTimeout:
                _forget(subject)
                return False
            except Exception:  # each pair meets it again, and reports it, as in a serial run
                pass
    finally:
        torch.set_num_threads(threads)
    return True


def _forget(subject: Subject) -> None:
    """Drop what the once-per-subject caches hold for ``subject`` (and its own-names copy)."""
    own = _OWN_NAMES.get(subject)
    for each in (subject, own):
        if each is not None:
            _WORKING.pop(each, None)
            _KEY_CACHE.pop(each, None)
            _OWN_NAMES.pop(each, None)


def ended_result(pair: Pair, how: Ended, timeout: float | None) -> Result:
    """The result of a pair whose worker ended or was killed before it answered."""
    if how.kind == "timeout" and timeout is not None:
        finding = Finding("error", Msg("common.timeout", {"seconds": timeout}))
        evidence: Json = {"timeout_seconds": timeout}
    else:
        finding = Finding("error", Msg("common.worker_ended", {"how": how.describe()}))
        evidence = {"worker_ended": how.describe()}
    return Result(
        check=pair.check.id,
        subject=pair.role,
        verdict=finding.verdict,
        message=freeze_msg(finding.message),
        evidence=freeze_evidence(evidence),
        headlines=pair.check.headlines,
    )


def _environment(seed: int, profile: Profile, timeout: float | None, args: Sequence[str], maps: Any) -> Environment:
    from headaudit.validation import recorded_detection

    return Environment(
        tool_version=__version__,
        python=f"{platform.python_implementation()} {sys.version.split()[0]}",
        torch=torch.__version__,
        hypothesis=hypothesis.__version__,
        device="cpu",
        threads=1,
        seed=seed,
        profile=profile.name,
        example_factor=profile.factor,
        timeout=timeout,
        args=tuple(args),
        maps=tuple(maps),
        detection=recorded_detection(),
    )


def run_audit(
    subjects: Mapping[str, Subject],
    checks: Sequence[Check[Any]],
    *,
    seed: int,
    profile: Profile,
    timeout: float | None = DEFAULT_TIMEOUT,
    args: Sequence[str] = (),
    progress: Progress | None = None,
    hosts: HostSet | None = None,
    only: Mapping[str, str] | None = None,
    jobs: int = 1,
    cache: ResultCache | None = None,
) -> Report:
    """Run ``checks`` on every subject (role -> subject), in registry order; never raises for a check.

    ``hosts`` are the host files of the host checks (None: the bundled ones); the report
    lists them under ``extra["hosts"]``. ``only`` maps a role to the one check group it
    runs (the positive control: ``{"control": "performance"}``); other roles run every check.
    ``jobs`` is how many worker processes run the pairs (:func:`run_pairs`); ``cache``
    serves the pairs whose key it holds and keeps the others' results
    (:mod:`headaudit.cache`). The report depends on neither.
    """
    only = only or {}
    from headaudit.cache import result_key
    from headaudit.hosts import default_hosts

    hosts = hosts or default_hosts()
    pairs = [
        Pair(check, role, subject)
        for check in checks
        for role, subject in subjects.items()
        if only.get(role, check.group) == check.group
    ]
    # the cache is asked and filled here, in the parent: workers only measure
    keys: list[str | None] = [
        None if cache is None else result_key(p.check, p.subject, seed, profile, timeout, hosts) for p in pairs
    ]
    found: list[Result | None] = [
        None if cache is None or key is None else cache.lookup(key, p.role) for p, key in zip(pairs, keys, strict=True)
    ]
    # a key asked twice in this run (the same file in two slots) is measured once, then
    # served to the other slot as the cache would serve it to the next run
    firsts: set[str] = set()
    twins: list[tuple[int, str]] = []
    todo: list[int] = []
    for i, key in enumerate(keys):
        if found[i] is not None:
            continue
        if key is not None and key in firsts:
            twins.append((i, key))
            continue
        if key is not None:
            firsts.add(key)
        todo.append(i)

    def measure(indices: list[int]) -> None:
        measured = run_pairs(
            [pairs[i] for i in indices], seed=seed, profile=profile, timeout=timeout, hosts=hosts,
            progress=progress, jobs=jobs,
        )  # fmt: skip
        for i, result in zip(indices, measured, strict=True):
            found[i] = result
            key = keys[i]
            if cache is not None and key is not None:
                cache.store(key, result)

    measure(todo)
    if cache is not None and twins:  # keys exist only with a cache
        for i, key in twins:
            found[i] = cache.lookup(key, pairs[i].role)  # None where the first ended in error
        measure([i for i, _ in twins if found[i] is None])  # an error is measured again, in its own slot
    results = [r for r in found if r is not None]
    maps = next(iter(subjects.values())).names.entries if subjects else ()
    return Report(
        subjects=tuple(s.info(role, only.get(role)) for role, s in subjects.items()),
        checks=tuple(CheckInfo(c.id, c.catalogue, c.severity, c.needs, c.settings, c.search, c.group) for c in checks),
        results=tuple(results),
        claims=judge_claims(results),
        environment=_environment(seed, profile, timeout, args, maps),
        extra={"hosts": hosts.info()},
    )
