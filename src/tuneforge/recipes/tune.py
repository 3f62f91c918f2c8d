"""`tuneforge tune`: a hyperparameter search over a fine-tune config on Optuna — TPE (seeded), a median pruner fed
by the validation metric, the study in SQLite (or any database URL) so an interrupted search resumes, trials in
parallel up to the cores — each trial a normal run folder trained by a `tuneforge finetune` child. Trial 0 is the
base config unchanged, so the report can compare the best trial with the defaults. `backend: ray` hands the same
trials to Ray Tune (recipes/tune_ray.py)."""
from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tuneforge.errors import UserError
from tuneforge.model.artifact import claim_folder
from tuneforge.recipes.tune_settings import DEFAULTS, STUDY_DB, Search, TuneSettings, prepare, say
from tuneforge.recipes.tune_trial import (STOPPING, child_env, finetune_command, run_trial, stop_all,
                                          stopping_on_signals, trial_folder, write_trial_config)

def open_study(search: Search):
    """The study, new or (with --resume) continued; --overwrite starts it again. A new study gets trial 0, the
    base config unchanged, in its queue."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own line per trial; failed trials are not tracebacks
    s, base_text = search.settings, yaml.safe_dump(search.base, sort_keys=True)
    ours = (search.out / STUDY_DB).exists() or (search.out / "best.yaml").exists()
    claim_folder(search.out, "search", ours, ours and s.storage is None, s.resume, s.overwrite)
    search.out.mkdir(parents=True, exist_ok=True)
    url, name = search.storage_url, search.study_name
    exists = name in optuna.get_all_study_names(url)
    if exists and s.overwrite:
        optuna.delete_study(study_name=name, storage=url)
    elif exists and not s.resume:
        raise UserError(f"{url}: already holds a search named '{name}'. Pass --resume to continue it, --overwrite "
                        "to replace it, or choose another --study-name.")
    # Steps are evaluations counted from 1 and Optuna prunes from step n_warmup_steps on: hence the + 1.
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=s.prune_startup,
                                               n_warmup_steps=s.prune_warmup + 1)
              if s.pruner == "median" else optuna.pruners.NopPruner())
    study = optuna.create_study(storage=url, study_name=name, direction=search.direction, pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=s.seed), load_if_exists=True)
    if exists and s.resume:
        if study.user_attrs.get("base_config") != base_text:
            raise UserError(f"{s.config}: the base config (with --set) changed since the search started, so its "
                            "trials would not compare; start a new search (--overwrite or another --output).")
        requeue_interrupted(study)
    else:
        study.set_user_attr("base_config", base_text)
        study.set_user_attr("direction", search.direction)
        study.enqueue_trial({}, user_attrs={DEFAULTS: True})
    return study


def requeue_interrupted(study) -> list[int]:
    """Trials a kill left RUNNING, or an interrupt marked failed, go back into the queue with the same values (a new
    trial number and folder). --resume means no other process is still running this study."""
    from optuna.trial import TrialState

    storage, trials = study._storage, study.get_trials(deepcopy=False)
    done = {t.user_attrs.get("requeued_from") for t in trials}
    again = []
    for t in trials:
        interrupted = t.state == TrialState.RUNNING or (t.state == TrialState.FAIL and t.user_attrs.get("interrupted"))
        if not interrupted or t.number in done:
            continue
        if t.state == TrialState.RUNNING:
            storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        attrs = {k: v for k, v in t.user_attrs.items() if k == DEFAULTS}
        study.enqueue_trial(t.params, user_attrs={**attrs, "requeued_from": t.number})
        again.append(t.number)
    if again:
        say(f"resume: trials {', '.join(map(str, again))} were interrupted; they run again with the same values.")
    return again


def run_local(search: Search, study, remaining: int) -> None:
    """`remaining` more trials on this machine, `search.parallel` at a time (threads, each waiting on its child).
    Trials are asked for and told under one lock: Optuna's own n_jobs can hand the same queued trial (trial 0) to two
    threads on SQLite, which has no row locks. An interrupt stops every child; the trials it cut short run again on
    --resume."""
    from optuna.trial import TrialState

    restore = stopping_on_signals() if threading.current_thread() is threading.main_thread() else None
    STOPPING.clear()
    lock, left, errors, ended = threading.Lock(), [remaining], [], []

    def worker() -> None:
        try:
            _work()
        finally:
            ended.append(True)

    def _work() -> None:
        while not STOPPING.is_set() and not errors:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
                trial = study.ask()
            try:
                state, value = _run_one(search, trial)
            except BaseException as exc:  # the defaults cannot run, an interrupt, a bug: no more trials
                if isinstance(exc, KeyboardInterrupt):
                    trial.set_user_attr("interrupted", True)  # --resume runs it again
                errors.append(exc)
                stop_all()
                state, value = "fail", None
            with lock:
                study.tell(trial, value, state=TrialState[state.upper()])

    try:
        if search.parallel == 1:
            worker()  # in the main thread, where a signal lands inside the trial
        else:
            _in_threads(worker, search.parallel, ended)
    finally:
        if restore:
            restore()
    if errors:
        raise errors[0]
    if STOPPING.is_set():
        raise KeyboardInterrupt


def _in_threads(worker, n: int, ended: list) -> None:
    """Run `worker` in `n` threads and wait until each has appended to `ended`."""
    for _ in range(n):
        threading.Thread(target=worker, daemon=True).start()
    # Not Thread.join: on Python 3.11 a join cut by a signal marks a live thread as ended (bpo-45274).
    while len(ended) < n:
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:  # the handler stopped the children: the workers end soon
            stop_all()


def _run_one(search: Search, trial) -> tuple[str, float | None]:
    """Run one trial's child: (complete | pruned | fail, its value: the best validation value, None unless
    complete)."""
    defaults = bool(trial.user_attrs.get(DEFAULTS))
    values = {} if defaults else {p.name: p.suggest(trial) for p in search.params}
    folder = trial_folder(search.out, trial.number)
    if folder.exists():  # left by a deleted study of the same name: its number is ours now
        shutil.rmtree(folder)
    config = write_trial_config(search.base, values, folder, search.threads)

    def report(evaluation: int, value: float) -> bool:
        trial.report(value, evaluation)
        return not defaults and trial.should_prune()

    run = run_trial(search.command(config), folder, report, search.metric, search.cwd, child_env(search.threads),
                    poll=search.settings.poll_seconds)
    if STOPPING.is_set():  # trials in threads: their children were stopped under them
        trial.set_user_attr("interrupted", True)
        return "fail", None
    if run.metric and "metric" not in trial.study.user_attrs:
        trial.study.set_user_attr("metric", run.metric)
    label = f"trial {trial.number}{' (defaults)' if defaults else ''}"
    shown = ", ".join(f"{k.split('.')[-1]} {v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]} {v}"
                      for k, v in values.items())
    if run.pruned:
        say(f"{label}: pruned after evaluation {len(run.values)} ({run.metric} {run.values[-1]:.4f}) · {shown}")
        return "pruned", None
    if run.returncode or not run.values:
        reason = run.error or "no validation record in metrics.jsonl"
        if defaults and run.returncode == 2:  # the base config itself does not run: no trial will
            raise UserError(f"{label} failed: {reason.removeprefix('error: ')} (see {folder / 'tune.log'})")
        say(f"{label}: failed (exit {run.returncode}): {reason}")
        return "fail", None
    best = min(run.values) if search.direction == "minimize" else max(run.values)
    say(f"{label}: {run.metric} {best:.4f} · {run.seconds:.0f} s{' · ' + shown if shown else ''}")
    return "complete", best


def finished_count(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def tune(settings: TuneSettings, command: Callable[[Path], list[str]] = finetune_command):
    """Run (or continue) a search and write best.yaml and the report. Returns tune_outputs.TuneResult."""
    from tuneforge.recipes.tune_outputs import write_outputs

    if settings.address and settings.backend != "ray":
        raise UserError(f"--address {settings.address}: goes with --backend ray.")
    search = prepare(settings, command)
    if settings.backend == "ray":
        from tuneforge.recipes.tune_ray import check_address

        check_address(settings.address)  # before the study exists: a wrong address leaves nothing behind
    study = open_study(search)
    started, remaining = time.time(), settings.trials - finished_count(study)
    if remaining <= 0:
        say(f"the study already holds {settings.trials} finished trials; raise --trials to run more.")
    elif settings.backend == "ray":
        from tuneforge.recipes.tune_ray import run_ray

        run_ray(search, study, remaining)
    else:
        say(f"search: {remaining} trials, {search.parallel} at a time, {search.threads} "
            f"thread{'s' if search.threads != 1 else ''} each; "
            f"study '{search.study_name}' in {search.storage_url}")
        run_local(search, study, remaining)
    return write_outputs(search, study, time.time() - started)
