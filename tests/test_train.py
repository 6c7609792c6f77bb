"""The training section (issue 27): judges, statistics, data, a tiny run in both slots, determinism.

Runs are tiny (two seeds, a few steps, a backbone of width 8) so the file stays within seconds;
the quick mode's figures are the README's, measured by `headaudit train`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from headaudit.checks._trains import TermTraining
from headaudit.model import Result
from headaudit.profiles import active_profile
from headaudit.subjects import Subject, bundled_reference, load_subject
from headaudit.train.checks import (
    ClusterWeightMeasurement,
    EvalBatchMeasurement,
    VsMeasurement,
    direction,
    judge_cluster_weight,
    judge_eval_batch,
    judge_vs,
)
from headaudit.train.data import DataError, TrainData, digits_data, load_npz, long_tailed
from headaudit.train.loop import HeadSpec, TrainConfig, run_one
from headaudit.train.session import TrainSession, _cluster_measurement, run_session
from headaudit.train.stats import Interval, interval, paired, t_quantile

from .conftest import SUBJECTS_DIR

TINY = TrainConfig(seeds=2, steps=4, batch=16, width=8)
COUPLING = SUBJECTS_DIR / "train_coupling.py"


def _iv(mean: float, hw: float | None, n: int = 5) -> Interval:
    return Interval(mean, hw, n)


# --- statistics ---------------------------------------------------------------------------


def test_t_interval_matches_the_textbook_values() -> None:
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(4) == pytest.approx(2.776)
    assert t_quantile(60) == pytest.approx(2.000, abs=1e-3)
    assert t_quantile(1000) == pytest.approx(1.962, abs=1e-3)
    iv = interval([1.0, 2.0, 3.0, 4.0, 5.0])  # sd = sqrt(2.5)
    assert iv.mean == 3.0
    assert iv.half_width == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5))
    assert interval([0.4]).half_width is None  # one seed: no interval
    assert paired([0.5, 0.7], [0.4, 0.5]).mean == pytest.approx(0.15)


# --- judges on hand-made measurements -------------------------------------------------------


def _eval(spread: float, spread_hw: float | None, noise: float | None, largest: float) -> EvalBatchMeasurement:
    n = 5 if noise is not None else 1
    accuracy = ((0.5, 0.5, 0.5),)
    return EvalBatchMeasurement((1, 16, 210), accuracy, _iv(spread, spread_hw, n), _iv(0.5, noise, n), largest)


def test_eval_batch_judge() -> None:
    assert judge_eval_batch(_eval(0.0, 0.0, 0.02, 0.0)).verdict == "pass"
    failed = judge_eval_batch(_eval(0.06, 0.02, 0.10, 0.09))  # the spread's interval lies above 0
    assert failed.verdict == "fail"
    assert failed.message.params["noise"] == 0.10
    assert judge_eval_batch(_eval(0.01, 0.012, 0.03, 0.04)).verdict == "warn"  # its interval includes 0
    assert judge_eval_batch(_eval(0.05, None, None, 0.05)).message.id == "train.eval-batch.one_seed"


_TRAINS = (TermTraining("proto_loss_fn[cluster_loss]", "trains", "similarities"),)
_DETACHED = (TermTraining("proto_loss_fn[cluster_loss]", "no-gradient", "similarities"),)


def _cluster(measured: int, below: int, training: tuple[TermTraining, ...] = _TRAINS) -> ClusterWeightMeasurement:
    return ClusterWeightMeasurement("own", 100, 0.8, 0, measured, below, 0.5, 0.01, 1e-6, training)


def test_cluster_weight_judge() -> None:
    assert judge_cluster_weight(_cluster(100, 25)).verdict == "pass"  # a quarter is allowed
    assert judge_cluster_weight(_cluster(100, 26)).verdict == "fail"
    assert judge_cluster_weight(_cluster(0, 0)).verdict == "warn"  # nothing to compare: no pass
    # a weight that never collapses is no pass for a term that does not train ...
    detached = judge_cluster_weight(_cluster(100, 0, _DETACHED))
    assert (detached.verdict, detached.message.id) == ("fail", "trains.no-gradient")
    assert judge_cluster_weight(_cluster(100, 26, _DETACHED)).message.id == "train.cluster-weight.fail"
    # ... nor for one the probe never saw train
    unseen = judge_cluster_weight(_cluster(100, 0, ()))
    assert (unseen.verdict, unseen.message.id) == ("warn", "train.cluster-weight.untested")


def _vs(acc: Interval, rare: Interval) -> VsMeasurement:
    return VsMeasurement("baseline", acc, rare, (4, 5, 6))


def test_vs_baseline_judge_says_only_what_the_interval_supports() -> None:
    better, worse, none = _iv(0.05, 0.02), _iv(-0.05, 0.02), _iv(0.05, 0.08)
    assert [direction(x) for x in (better, worse, none)] == ["better", "worse", "none"]
    assert judge_vs(_vs(better, none)).verdict == "pass"
    assert judge_vs(_vs(better, worse)).verdict == "fail"
    assert judge_vs(_vs(none, none)).verdict == "warn"
    one = judge_vs(_vs(_iv(0.3, None, 1), _iv(0.3, None, 1)))
    assert (one.verdict, one.message.id) == ("warn", "train.vs-baseline.one_seed")  # no direction from one seed
    # role-blind: the same pair the other way round is the mirrored verdict
    assert judge_vs(_vs(_iv(-0.05, 0.02), _iv(-0.05, 0.08))).verdict == "fail"


# --- data -------------------------------------------------------------------------------------


def test_long_tailed_counts_follow_the_isic_shape() -> None:
    assert long_tailed(150, 1.0) == (150,) * 7
    counts = long_tailed(6705, 6705 / 115)
    assert counts == (6705, 1113, 1099, 514, 327, 142, 115)


def test_digits_are_long_tailed_with_a_balanced_test_split() -> None:
    pytest.importorskip("sklearn")
    data = digits_data(0)
    assert data.test_counts == (30,) * 7
    assert data.train_counts[0] / data.train_counts[-1] == pytest.approx(49, abs=1)  # 147 / 3 after rounding
    balanced = digits_data(0, 1.0)
    assert balanced.train_counts == (data.train_counts[0],) * 7
    assert np.array_equal(balanced.test_x, data.test_x)  # the test split is drawn first, the same


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "features.npz"
    np.savez(path, **arrays)
    return path


def _features(n_per_class: int = 6, classes: int = 3, dim: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), n_per_class)
    patches = rng.standard_normal((len(labels), 5, dim)).astype(np.float32)
    patches[np.arange(len(labels)), :, labels] += 3.0  # each class along its own direction (LayerNorm keeps it)
    return {"patches": patches, "labels": labels}


def test_npz_features_train_without_the_backbone(tmp_path: Path) -> None:
    data = load_npz(_npz(tmp_path, **_features()), 0)
    assert (data.kind, data.num_classes, data.test_counts) == ("features", 3, (3, 3, 3))
    assert data.train_global is not None
    assert np.allclose(data.train_global, data.train_x.mean(axis=1))  # global defaults to the patch mean
    spec = HeadSpec("candidate", str(bundled_reference("head_fixed.py")))
    run = run_one(spec, data, TINY, 0)
    assert run.status == "ok", run.detail
    assert len(run.balanced_accuracy) == 3


def _gap() -> np.ndarray:
    """Labels 0 and 2 only: class 1 has no sample."""
    labels = _features()["labels"]
    return np.where(labels == 1, 2, labels)


@pytest.mark.parametrize(
    ("arrays", "says"),
    [
        ({"labels": np.zeros(4, dtype=np.int64)}, "array 'patches' is missing"),
        ({"patches": np.zeros((4, 2, 3), dtype=np.float32)}, "array 'labels' is missing"),
        ({"patches": np.zeros((4, 3), dtype=np.float32), "labels": np.zeros(4, dtype=np.int64)}, "rank 2"),
        ({"patches": np.zeros((4, 2, 3), dtype=np.float32), "labels": np.zeros((4, 1), dtype=np.int64)}, "rank 2"),
        ({**_features(), "global": np.zeros((18, 8, 1), dtype=np.float32)}, "global must be (N, D)"),
        ({"patches": _features()["patches"], "labels": _features()["labels"] - 1}, "labels out of range"),
        ({"patches": _features()["patches"], "labels": _features()["labels"].astype(np.float32)}, "integers"),
        (_features(n_per_class=3), "needs at least 2 per class"),
        ({"patches": _features()["patches"], "labels": _gap()}, "class 1 has 0 samples"),
        ({"patches": _features()["patches"] * np.nan, "labels": _features()["labels"]}, "NaN"),
    ],
)
def test_malformed_npz_is_one_line(tmp_path: Path, arrays: dict[str, np.ndarray], says: str) -> None:
    with pytest.raises(DataError) as raised:
        load_npz(_npz(tmp_path, **arrays), 0)
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)


def test_malformed_npz_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through ``cli.main`` in this process (``python -m headaudit`` exits with what it
    returns): the exit status and the one line are main's, a subprocess only adds a torch import."""
    from headaudit.cli import main

    path = _npz(tmp_path, labels=np.zeros(4, dtype=np.int64))
    assert main(["train", "--data", str(path), "--seeds", "2", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "array 'patches' is missing" in err


# --- a tiny run end to end, both slots ---------------------------------------------------------


def _load(cls: str, role: str) -> Subject:
    return load_subject(f"{COUPLING}:{cls}", role)


def _session(
    subjects: dict[str, Subject], data: TrainData, workers: int = 1, config: TrainConfig = TINY
) -> TrainSession:
    return run_session(subjects, data, config, active_profile(None), workers=workers)


def _verdicts(results: tuple[Result, ...]) -> dict[tuple[str, str], str]:
    return {(r.check, r.subject): r.verdict for r in results}


def test_tiny_run_in_both_slots(tmp_path: Path) -> None:
    data = load_npz(_npz(tmp_path, **_features(n_per_class=12)), 0)
    coupled, plain = "BatchCentred", "PerSample"
    # three seeds of 20 steps: with two seeds, t(0.975, 1) = 12.7 leaves almost any spread's
    # interval around 0; 20 steps train the per-sample model well enough that the centred
    # head's spread (chance at a batch of one, near the per-sample accuracy on the whole split)
    # repeats from seed to seed
    three = dataclasses.replace(TINY, seeds=3, steps=20)
    first = _session({"baseline": _load(plain, "baseline"), "candidate": _load(coupled, "candidate")}, data, 1, three)
    swapped = _session({"baseline": _load(coupled, "baseline"), "candidate": _load(plain, "candidate")}, data, 1, three)
    a = _verdicts(first.results(["baseline", "candidate"]))
    b = _verdicts(swapped.results(["baseline", "candidate"]))
    # the batch-centred head fails, the per-sample one passes, in either slot
    assert (a[("train.eval-batch", "candidate")], b[("train.eval-batch", "baseline")]) == ("fail", "fail")
    assert (a[("train.eval-batch", "baseline")], b[("train.eval-batch", "candidate")]) == ("pass", "pass")
    # the cluster term: head_fixed.py's present-only weights never collapse
    assert {a[("train.cluster-weight", r)] for r in ("baseline", "candidate")} == {"pass"}
    # the relational verdict is recorded on the compared subject, naming its reference
    vs = next(r for r in first.results(["baseline", "candidate"]) if r.check == "train.vs-baseline")
    assert (vs.subject, vs.evidence["against"]) == ("candidate", "baseline")  # type: ignore[index]
    # the recommended configuration is trained against the same head with it off
    assert first.recommended == ("candidate+cb", "candidate")
    assert "candidate+cb - candidate" in first.section()["pairs"]


# head_optimal.py's weights give an absent class the largest weight: the present ones collapse.
# AllClassesDenominator divides by every class, not the present ones: its term shrinks to
# (present / all), never below a tenth with 7 classes, so it passes this check (and fails
# weights.absent-classes, which judges any shrink). DetachedCluster is head_fixed.py with the
# cluster term detached: its weight never collapses, and it teaches nothing.
@pytest.mark.parametrize(
    ("spec", "verdict", "message"),
    [
        (str(bundled_reference("head_optimal.py")), "fail", "train.cluster-weight.fail"),
        (f"{SUBJECTS_DIR / 'class_weights.py'}:AllClassesDenominator", "pass", "train.cluster-weight.pass"),
        (f"{SUBJECTS_DIR / 'class_weights.py'}:PresentOnly", "pass", "train.cluster-weight.pass"),
        (f"{SUBJECTS_DIR / 'untrainable_terms.py'}:DetachedCluster", "fail", "trains.no-gradient"),
    ],
)
@pytest.mark.parametrize("role", ["baseline", "candidate"])
def test_cluster_weight_on_the_training_batches(spec: str, verdict: str, message: str, role: str) -> None:
    pytest.importorskip("sklearn")
    subject = load_subject(spec, role)
    spec = HeadSpec(role, subject.spec)
    measured = _cluster_measurement(subject, spec, digits_data(0), TINY, active_profile(None))
    assert isinstance(measured, ClusterWeightMeasurement), measured
    found = judge_cluster_weight(measured)
    assert (found.verdict, found.message.id) == (verdict, message), found
    untrainable = message.startswith("trains.")
    probed = {r.outcome for r in measured.training if "cluster_loss" in r.term}
    assert probed == ({"no-gradient"} if untrainable else {"trains"}), measured.training
    if untrainable:  # the weight alone would have passed it
        assert measured.below_limit == 0


def test_a_renamed_labels_parameter_trains_through_the_map(tmp_path: Path) -> None:
    data = load_npz(_npz(tmp_path, **_features()), 0)
    spec = f"{SUBJECTS_DIR / 'targets_param.py'}:TargetsHead"
    unmapped = run_one(HeadSpec("candidate", spec), data, TINY, 0)
    assert unmapped.status == "n/a"
    assert "labels" in unmapped.detail  # names the parameter it looked for
    mapped = run_one(HeadSpec("candidate", spec, (("forward.labels", "forward.targets"),)), data, TINY, 0)
    assert mapped.status == "ok", mapped.detail


def test_a_subject_that_raises_is_error_not_a_number(tmp_path: Path) -> None:
    data = load_npz(_npz(tmp_path, **_features()), 0)
    spec = HeadSpec("candidate", f"{SUBJECTS_DIR / 'forward_raises.py'}")
    run = run_one(spec, data, TINY, 0)
    assert run.status == "error"
    assert run.balanced_accuracy == ()


def test_same_seed_same_json_whatever_the_workers(tmp_path: Path) -> None:
    data = load_npz(_npz(tmp_path, **_features()), 0)
    subjects = {"baseline": _load("PerSample", "baseline"), "candidate": _load("BatchCentred", "candidate")}
    session = _session(subjects, data)
    serial = json.dumps(session.section(), sort_keys=True)
    forked = json.dumps(_session(subjects, data, workers=2).section(), sort_keys=True)
    assert serial == forked
    pytest.importorskip("matplotlib")
    from headaudit.train.plots import write_loss_plot

    assert write_loss_plot(session, tmp_path / "charts").read_bytes()[:4] == b"\x89PNG"


def test_the_default_report_does_not_train_and_report_train_adds_the_section(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from headaudit.cli import main
    from headaudit.render.json import parse_json
    from headaudit.render.markdown import render_markdown
    from headaudit.render.training import training_advice

    base = ["report", "--no-bench", "--only", "static.data-writes", "--format", "json"]
    assert main(base) == 0
    assert "training" not in json.loads(capsys.readouterr().out)["extra"]
    data = str(_npz(tmp_path, **_features()))
    assert main([*base, "--train", "--data", data, "--seeds", "2", "--steps", "2"]) == 0
    report = parse_json(capsys.readouterr().out)
    assert {r.check for r in report.results} >= {"train.eval-batch", "train.cluster-weight", "train.vs-baseline"}
    # the reproduce command trains the same session
    assert report.environment.args[-7:] == ("--train", "--seeds", "2", "--steps", "2", "--data", data)
    out = render_markdown(report, "zh")
    assert "## 缺陷在训练中的代价" in out
    assert "`train.eval-batch`" in out
    # the advice section (四) says what the recommended configuration changed, with the interval
    advice = training_advice(report, "zh")
    assert advice[0].startswith("原报告推荐的配置（其 4.1")
    assert advice[0] in out


def test_only_a_train_check_says_where_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from headaudit.cli import main

    assert main(["report", "--only", "train.eval-batch"]) == 2
    assert "run `headaudit train` or add --train" in capsys.readouterr().err


def test_train_true_in_the_project_table_is_read_and_checked(tmp_path: Path) -> None:
    from headaudit.config import find_config
    from headaudit.errors import ConfigError

    (tmp_path / "pyproject.toml").write_text("[tool.headaudit]\ntrain = true\n", encoding="utf-8")
    assert find_config(tmp_path).get("train") is True
    (tmp_path / "pyproject.toml").write_text("[tool.headaudit]\ntrain = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="train in"):
        find_config(tmp_path)


def test_the_digits_backbone_gives_the_same_numbers_whatever_the_workers() -> None:
    """The conv backbone on the bundled digits, serial and over two forked workers: the
    same losses and accuracies. (The training's first pool, multiprocessing's, gave numbers
    that differed from a serial run in the sixth digit after a few dozen steps; the audit's
    worker pool sets one thread before any op.)"""
    subjects = {"baseline": _load("BatchCentred", "baseline")}  # one head: a run per worker
    config = TrainConfig(seeds=2, steps=40)  # the quick mode's width and batch
    data = digits_data(0)
    serial = json.dumps(_session(subjects, data, config=config).section(), sort_keys=True)
    forked = json.dumps(_session(subjects, data, workers=2, config=config).section(), sort_keys=True)
    assert serial == forked


# --- the result cache serves a session's runs and cluster weights -----------------------------


def _cached(subjects: dict[str, Subject], data: TrainData, folder: Path) -> tuple[TrainSession, tuple[int, int]]:
    from headaudit.cache import ResultCache

    cache = ResultCache(folder)
    session = run_session(subjects, data, TINY, active_profile(None), cache=cache)
    return session, (cache.training_reused, cache.training_tasks)


def test_a_cached_session_is_the_session_it_stored_without_timings(tmp_path: Path) -> None:
    data = load_npz(_npz(tmp_path, **_features()), 0)
    subjects = {"baseline": _load("PerSample", "baseline"), "candidate": _load("BatchCentred", "candidate")}
    first, counts = _cached(subjects, data, tmp_path / "cache")
    heads = len(first.heads)  # baseline, candidate, candidate with use_class_balanced=True
    assert counts == (0, heads * TINY.seeds + heads)  # a run per head and seed, a cluster weight per head
    second, counts = _cached(subjects, data, tmp_path / "cache")
    assert counts == (heads * TINY.seeds + heads,) * 2
    assert json.dumps(second.section(), sort_keys=True) == json.dumps(first.section(), sort_keys=True)
    assert second.results(["baseline", "candidate"]) == first.results(["baseline", "candidate"])
    # a timing is not a function of the inputs: a served run has none, and says so
    assert first.seconds_per_step("baseline") is not None
    assert second.seconds_per_step("baseline") is None
    assert second.section(timings=True)["heads"]["baseline"]["seconds_per_step"] is None
    # the role is not part of a key: in exchanged slots the two heads' own tasks are served
    # (the recommended configuration is now trained on the other head: measured)
    swapped = {"baseline": _load("BatchCentred", "baseline"), "candidate": _load("PerSample", "candidate")}
    again, counts = _cached(swapped, data, tmp_path / "cache")
    assert counts == (2 * TINY.seeds + 2, heads * TINY.seeds + heads)
    assert again.of("baseline")[0].balanced_accuracy == first.of("candidate")[0].balanced_accuracy


def test_editing_a_head_retrains_it_alone_and_errors_are_not_kept(tmp_path: Path) -> None:
    data = load_npz(_npz(tmp_path, **_features()), 0)
    copy = tmp_path / "coupling.py"
    copy.write_text(COUPLING.read_text(encoding="utf-8"), encoding="utf-8")
    subjects = {"baseline": _load("PerSample", "baseline"), "candidate": load_subject(f"{copy}:BatchCentred")}
    _cached(subjects, data, tmp_path / "cache")
    with copy.open("a", encoding="utf-8") as out:
        out.write("# an edit that changes no behaviour\n")
    subjects["candidate"] = load_subject(f"{copy}:BatchCentred", "candidate")
    _, (reused, total) = _cached(subjects, data, tmp_path / "cache")
    assert reused == TINY.seeds + 1  # the baseline's runs and cluster weight; the candidate's (both settings) anew
    # a head that raises: its runs end in error, which is measured again every time
    raising = {
        "baseline": _load("PerSample", "baseline"),
        "candidate": load_subject(str(SUBJECTS_DIR / "forward_raises.py")),
    }
    first, _ = _cached(raising, data, tmp_path / "cache")
    errors = sum(r.status == "error" for r in first.runs) + sum(
        getattr(m, "verdict", None) == "error" for m in first.cluster.values()
    )
    assert errors >= TINY.seeds
    _, (reused, total) = _cached(raising, data, tmp_path / "cache")
    assert reused == total - errors


def test_train_twice_serves_the_runs_and_says_they_were_not_timed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from headaudit.cli import main

    monkeypatch.delenv("HEADAUDIT_NO_CACHE")
    monkeypatch.setenv("HEADAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    args = ["train", "--data", str(_npz(tmp_path, **_features())), "--seeds", "2", "--steps", "2"]
    assert main([*args, "--json", str(tmp_path / "first.json")]) == 0
    first = capsys.readouterr()
    assert "Time per training step" in first.out
    assert "cache: 0 of " in first.err
    assert main([*args, "--json", str(tmp_path / "second.json")]) == 0
    second = capsys.readouterr()
    assert "Not timed now, served from the result cache: baseline, candidate, control" in second.out
    assert "Time per training step" not in second.out
    served = re.search(r"cache: (\d+) of (\d+) training runs and cluster weights reused", second.err)
    assert served is not None, second.err
    assert served.group(1) == served.group(2), second.err
    one, two = (json.loads((tmp_path / f"{n}.json").read_text(encoding="utf-8")) for n in ("first", "second"))
    for payload in (one, two):
        for head in payload["training"]["heads"].values():
            head.pop("seconds_per_step"), head.pop("cpu_seconds_per_step")
    assert one == two
    assert main([*args, "--no-cache"]) == 0
    assert "Time per training step" in capsys.readouterr().out


# --- headaudit check compares what the recording trained --------------------------------------


def test_check_trains_as_recorded_and_a_coupled_head_is_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from headaudit.cli import main

    data = str(_npz(tmp_path, **_features()))
    expect = tmp_path / "audit.json"
    base = ["check", "--expect", str(expect), "--only", "static.data-writes"]
    plain = ["--candidate", f"{COUPLING}:PerSample"]
    assert main([*base, *plain, "--update", "--train", "--data", data, "--seeds", "2", "--steps", "2"]) == 1
    recorded = json.loads(expect.read_text(encoding="utf-8"))
    assert {r["check"] for r in recorded["results"]} >= {"train.eval-batch", "train.cluster-weight"}
    capsys.readouterr()
    assert main([*base, *plain]) == 0  # no --train: the recording trained, so the comparison does
    err = capsys.readouterr().err
    compared = re.search(r"no regressions against .* \((\d+) results compared\)", err)
    assert compared is not None, err
    assert int(compared.group(1)) == len(recorded["results"])
    # the candidate's prediction of a sample now depends on its batch: train.eval-batch regresses
    assert main([*base, "--candidate", f"{COUPLING}:BatchCentred"]) == 1
    out = capsys.readouterr().out
    assert "regression: candidate train.eval-batch: verdict: pass ->" in out
    # a comparison with another training session is refused, as another seed is
    assert main([*base, *plain, "--seeds", "3"]) == 2
    assert "training '--train --seeds 3" in capsys.readouterr().err


@pytest.mark.parametrize("role", ["baseline", "candidate"])
def test_a_name_the_head_lacks_is_n_a_naming_it_and_the_rest_is_measured(tmp_path: Path, role: str) -> None:
    """A copy that renamed ``proto_manager``: the cluster weight reads its prototypes, so it
    is n/a naming the name looked for; the runs (forward, labels) and eval-batch still measure."""
    data = load_npz(_npz(tmp_path, **_features()), 0)
    other = "candidate" if role == "baseline" else "baseline"
    renamed = load_subject(str(SUBJECTS_DIR / "renamed_manager.py"), role)
    session = _session({role: renamed, other: _load("PerSample", other)}, data)
    found = {r.check: r for r in session.results([role]) if r.subject == role}
    assert found["train.cluster-weight"].verdict == "n/a"
    assert "proto_manager" in json.dumps(found["train.cluster-weight"].message.to_dict())
    assert found["train.eval-batch"].verdict in ("pass", "warn", "fail")
    summary = session.summary(role)
    assert summary is not None
    assert summary["same_class_cosine"] is None  # no prototypes to compare, not a number
