"""`tuneforge tune --backend ray`: the same search on Ray Tune. OptunaSearch proposes the values from the same study
(storage, TPE sampler, trial 0 = the defaults), Ray's median stopping rule stops weak trials, and every trial is the
same `tuneforge finetune` child, started on whichever node Ray places it and reporting each validation value with
tune.report. Ray is imported only here, only for this backend."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from tuneforge.errors import UserError
from tuneforge.recipes.tune_settings import DEFAULTS, Search, say
from tuneforge.recipes.tune_trial import child_env, finetune_command, run_trial, trial_folder, write_trial_config

NUMBER, IS_DEFAULTS = "tuneforge_trial", "tuneforge_defaults"  # trial facts passed in Ray's config, not searched
PASSED_ENV = ("HF_", "TUNEFORGE_", "TRANSFORMERS_", "TOKENIZERS_")  # the driver's settings the trials need too


def check_address(address: str | None) -> str | None:
    """None (start a local Ray), `auto`, or a HOST:PORT (ray://HOST:PORT) that accepts a connection: an address
    where nothing answers is one line, exit 2, not Ray's long retries."""
    if not address or address == "local":
        return None
    if address == "auto":
        return address
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"--address {address}: expected HOST:PORT, ray://HOST:PORT or auto.")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except OSError as exc:
        raise UserError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one with "
                        "`ray start --head` or check the address.") from None
    return address


class _Define:
    """Ray's OptunaSearch define-by-run space: the defaults trial draws nothing; every other trial draws each key.
    A class, not a closure, so Ray can pickle the searcher with it."""

    def __init__(self, params):
        self.params = params

    def __call__(self, trial) -> dict:
        defaults = bool(trial.user_attrs.get(DEFAULTS))
        if not defaults:
            for p in self.params:
                p.suggest(trial)
        return {NUMBER: trial.number, IS_DEFAULTS: defaults}


def ray_trial(config: dict, job: dict) -> None:
    """One trial on a Ray worker: the trial's run folder and child, as on the local backend. When the scheduler
    stops the trial, tune.report raises SystemExit in here and run_trial stops the child on the way out."""
    from ray import tune

    values = {k: v for k, v in config.items() if k not in (NUMBER, IS_DEFAULTS)}
    folder = trial_folder(Path(job["out"]), config[NUMBER])
    path = write_trial_config(job["base"], values, folder, job["threads"])
    best = None

    def report(evaluation: int, value: float) -> bool:
        nonlocal best
        best = value if best is None else (min if job["direction"] == "minimize" else max)(best, value)
        tune.report({"objective": best, "value": value, "evaluation": evaluation})
        return False

    run = run_trial(finetune_command(path), folder, report, job["metric"], job["cwd"], child_env(job["threads"]),
                    poll=job["poll"])
    if run.returncode or not run.values:
        raise RuntimeError(f"trial {config[NUMBER]} failed (exit {run.returncode}): {run.error}")


def _connect(address: str | None, cores: int):
    import ray

    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
    try:
        ray.init(address=address, num_cpus=cores if address is None else None, include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR", runtime_env={"env_vars": env})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--address {address}: could not join the Ray cluster ({first}); a cluster with token "
                        "authentication also needs RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or "
                        "~/.ray/auth_token).") from None
    return ray


def _scheduler(search: Search, mode: str):
    from ray.tune.schedulers import FIFOScheduler, MedianStoppingRule

    s = search.settings
    if s.pruner == "none":
        return FIFOScheduler()
    # training_iteration counts the reports, i.e. the evaluations; the first prunable one is grace_period.
    return MedianStoppingRule(time_attr="training_iteration", metric="objective", mode=mode,
                              grace_period=s.prune_warmup + 1, min_samples_required=max(1, s.prune_startup))


def run_ray(search: Search, study, remaining: int) -> None:
    """`remaining` more trials of `study` on Ray (a local one, or the cluster at --address)."""
    address = check_address(search.settings.address)
    ray = _connect(address, len(os.sched_getaffinity(0)))
    try:
        _fit(search, remaining, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        ray.shutdown()


def _fit(search: Search, remaining: int, cpus: int) -> None:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0 the classic output prints nothing: we print
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    s = search.settings
    threads = (search.base.get("runtime") or {}).get("threads") or max(1, cpus // search.parallel)
    job = {"out": str(search.out.resolve()), "base": search.base, "threads": threads, "metric": search.metric,
           "direction": search.direction, "cwd": search.cwd, "poll": s.poll_seconds}
    say(f"search on Ray ({cpus} CPUs): {remaining} trials, {search.parallel} at a time, {threads} "
        f"thread{'s' if threads != 1 else ''} each; "
        f"study '{search.study_name}' in {search.storage_url}")
    mode = "min" if search.direction == "minimize" else "max"
    # metric and mode go to the searcher and the scheduler themselves: through TuneConfig they do not reach a
    # searcher that Ray wraps in its concurrency limiter.
    searcher = OptunaSearch(space=_Define(search.params), metric="objective", mode=mode,
                            sampler=optuna.samplers.TPESampler(seed=s.seed), study_name=search.study_name,
                            storage=optuna.storages.RDBStorage(search.storage_url))
    trainable = tune.with_resources(tune.with_parameters(ray_trial, job=job), {"cpu": threads})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=_scheduler(search, mode), num_samples=remaining,
                                    max_concurrent_trials=search.parallel),
        run_config=tune.RunConfig(name=search.study_name, storage_path=str((search.out / "ray").resolve()),
                                  verbose=0, callbacks=[_printer()]))
    tuner.fit()


def _printer():
    """A Ray callback that prints one line per ended trial, as the local backend does."""
    from ray.tune import Callback

    class Printer(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            say(f"trial {trial.config.get(NUMBER)}: best {result.get('objective', float('nan')):.4f} after "
                f"{result.get('evaluation', 0)} evaluations")

        def on_trial_error(self, iteration, trials, trial, **info):
            say(f"trial {trial.config.get(NUMBER)}: failed (see {trial.local_path or 'the Ray logs'})")

    return Printer()
