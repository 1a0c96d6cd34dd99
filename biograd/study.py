"""Multi-fidelity selection with Optuna (a sweep file's ``search: {strategy: tpe}``).

Optuna's TPE sampler proposes one setting after another (ask-and-tell, in the sweep process). A setting's
trials (one per seed) train one epoch at a time, each epoch a Dask task (:func:`biograd.sweep.run_pack`
with ``until_epoch``); once every seed has finished epoch e, the mean validation accuracy over the seeds
is reported to Optuna at step e, and the pruner (asynchronous successive halving, ``search.pruner``)
decides whether the setting trains on. A setting ends *complete* after its last epoch (Optuna's value: the
mean validation accuracy), *pruned* when stopped early (its runs' status ``pruned``), or *failed* when a
trial raised or diverged.

Budget: ``search.budget`` training samples over the study, every seed's counted. A new setting starts only
if the samples trained, those the running settings may still train and a whole setting's fit the budget,
so the study never exceeds it; a pruned setting frees what it did not train for new ones.

The study is ``<sweep>/study.journal`` (Optuna's JournalFileBackend). Run the sweep again after a kill and
the running settings continue from their checkpoints; a finished study trains nothing; trials found under older
names (before a change of the naming) are renamed, not trained again. The sampler of every ask is seeded from
``search.seed`` and the number of settings asked before, so a serial sweep repeats exactly, interrupted or not; on
a cluster the order in which trials end shapes later proposals. Watch a study with
``optuna-dashboard <sweep>/study.journal``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from biograd.config import load_config
from biograd.data.splits import load_splits
from biograd.models.elements import equations_dir
from biograd.signals import Terminated, stop_requests
from biograd.sweep import (
    ENDED,
    SweepFile,
    SweepResult,
    Trial,
    adopt_trials,
    check_trials_unchanged,
    dask_client,
    packs,
    run_pack,
    setting_trials,
    stopped_mid_task,
    summarise,
    sweep_folder,
    trial_row,
    trial_run,
    validated_epochs,
)

STUDY_FILE = "study.journal"


def distributions(sweep: SweepFile) -> dict[str, BaseDistribution]:
    """The search space as Optuna distributions (uniform, log-uniform, categorical)."""
    space = {}
    for key, dist in sweep.search.space.items():
        if dist.choice is not None:
            space[key] = CategoricalDistribution(dist.choice)
        else:
            low, high = dist.uniform or dist.log_uniform
            space[key] = FloatDistribution(low, high, log=dist.log_uniform is not None)
    return space


def open_study(sweep: SweepFile, out: Path) -> optuna.Study:
    """The sweep's study in ``out/study.journal``, created on first use; a study that began with other trials (the
    base config, the overrides or the equation files changed since) is refused rather than mixed with new ones. One
    whose trials have other names only (made under an older naming) is continued, its trials renamed
    (:func:`adopt_study`)."""
    fingerprint = check_study(sweep, out)
    search = sweep.search
    pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=search.pruner.min_epochs,
                                                     reduction_factor=search.pruner.reduction)
              if search.pruner else optuna.pruners.NopPruner())
    out.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(out / STUDY_FILE)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=sweep.name, storage=storage, direction="maximize", pruner=pruner,
                                load_if_exists=True)
    if study.user_attrs.get("fingerprint", fingerprint) != fingerprint and not adopt_study(study, sweep, out):
        raise ValueError(f"{out / STUDY_FILE}: the study began with other trials (the base config, the sweep's set: "
                         "or the equation files have changed since): restore them to continue it, or give another "
                         "--out for a new study")
    study.set_user_attr("fingerprint", fingerprint)
    return study


def adopt_study(study: optuna.Study, sweep: SweepFile, out: Path) -> bool:
    """The trials of the study's settings found in folders under older names (a change of the naming) with today's
    config and equation files, renamed (:func:`~biograd.sweep.adopt_trials`); True if any of them has its run now:
    then the study's fingerprint is an older name of the same trials (one of its settings has today's base config,
    overrides and equation files), not of other trials. Call it holding the sweep folder's lock."""
    trials = [trial for _, trial in journal_trials(study, sweep, out)]
    adopt_trials(trials, out)
    return any(trial_run(trial) is not None for trial in trials)


def journal_trials(study: optuna.Study, sweep: SweepFile, out: Path) -> list[tuple[optuna.trial.FrozenTrial, Trial]]:
    """Every setting's trials, with their setting (the settings of the journal, in the order asked)."""
    return [(frozen, trial) for frozen in study.get_trials(deepcopy=False)
            for trial in setting_trials(sweep, out, frozen.number, frozen.params)]


def reseed(study: optuna.Study, sweep: SweepFile) -> None:
    """A sampler seeded from the search seed and the number of settings asked so far (repeatable asks)."""
    seed = int(np.random.SeedSequence([sweep.search.seed, len(study.trials)]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=sweep.search.startup)


@dataclass
class Setting:
    """A setting under way: its Optuna trial, its trials (one per seed) and the epochs reported so far."""

    trial: optuna.Trial
    trials: list[Trial]
    epochs: int
    reported: int = 0
    running: set[str] = field(default_factory=set)  # trials (ids) training towards epoch ``reported + 1``
    failed: list[str] = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.trial.number


class Executor:
    """Runs ``run_pack`` calls serially in this process or on a Dask cluster; :meth:`next` gives the key and the
    outcome (rows, or the exception) of a call that ended."""

    def __init__(self, serial: bool, scheduler: str | None, workers: int | None):
        self.cluster = ExitStack()  # the Dask client (sweep.dask_client), ended as the executor's block ends
        self.client = None if serial else self.cluster.enter_context(dask_client(scheduler, workers))
        self.slots = 1 if serial else max(1, len(self.client.scheduler_info()["workers"]))
        self.done: deque = deque()
        self.futures = None
        self.stop: list[str] = []  # stop signals received (biograd.signals.stop_requests): no new work

    def submit(self, key: str, fn: Callable, *args) -> None:
        if self.stop:
            raise Terminated(f"stopped by {self.stop[0]}; the journal and the trials' checkpoints are intact",
                             self.stop[0])
        if self.client is None:
            try:
                self.done.append((key, fn(*args)))
            except Exception as err:  # noqa: BLE001 - the study records the failed setting and goes on
                self.done.append((key, err))
            return
        from dask.distributed import as_completed

        future = self.client.submit(fn, *args, key=key, pure=False, retries=1)
        if self.futures is None:
            self.futures = as_completed([future], with_results=False)
        else:
            self.futures.add(future)

    def next(self) -> tuple[str, list[dict] | BaseException]:
        if self.done:
            return self.done.popleft()
        future = next(self.futures)
        try:
            return future.key, future.result()
        except Exception as err:  # noqa: BLE001
            return future.key, err

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.cluster.__exit__(*exc)  # a stop or an error ends a LocalCluster's workers at once


def check_study(sweep: SweepFile, out: Path) -> str:
    """The base config, the overrides and every searched key validated (with one drawn setting) before any work;
    returns that setting's first trial name, which changes with the base config, the overrides and the equation
    files (the study's fingerprint)."""
    rng = np.random.default_rng(sweep.search.seed)
    trials = setting_trials(sweep, out, 0, {key: dist.draw(rng) for key, dist in sweep.search.space.items()})
    if not load_config(trials[0].base, list(trials[0].overrides)).data.validation:
        raise ValueError(f"{sweep.base}: data.validation is 0, but a tpe study reports and prunes on validation "
                         "accuracy: hold out a validation split (data.validation: n)")
    return trials[0].id


def samples_per_epoch(sweep: SweepFile) -> int:
    """Training samples of one trial's epoch (the base config's training split, with the sweep's overrides)."""
    config = load_config(sweep.base, list(sweep.set))
    return len(load_splits(config.data, config.model.using(equations_dir())).train)


class Study:
    """One run of a sweep's study: asks, trains epoch by epoch, reports, prunes, until the budget is used.

    A setting that Optuna proposes again (the same trials: a categorical space makes it likely) is not trained
    twice: it repeats the earlier setting's reports and end (once that one has ended), and counts in the budget
    as if trained, so that a study of a small space ends."""

    def __init__(self, sweep: SweepFile, out: Path, log: Callable[[str], None] | None = None):
        self.sweep, self.out, self.log = sweep, out, log or (lambda line: None)
        self.executor: Executor | None = None
        self.study = open_study(sweep, out)
        self.epochs = load_config(sweep.base, list(sweep.set)).train.epochs
        self.epoch_samples = samples_per_epoch(sweep) * len(sweep.seeds)  # one epoch of a setting, all seeds
        self.active: dict[int, Setting] = {}
        self.first_of: dict[tuple[str, ...], int] = {}  # a setting's trials -> the first setting that has them
        self.repeats: dict[int, list[optuna.Trial]] = {}  # a running setting -> settings waiting to repeat it

    def spent(self) -> int:
        """Training samples trained and reserved: reported epochs of every setting (of a failed one, and of those
        that repeat it, also the epoch it failed in: settings that fail use the budget up, and the study ends), and
        the epochs the running settings may still train."""
        reported = sum(len(t.intermediate_values) + (t.state == TrialState.FAIL) for t in self.study.trials)
        reserved = sum(s.epochs - s.reported for s in self.active.values())
        return (reported + reserved) * self.epoch_samples

    def run(self, executor: Executor) -> None:
        """Until the budget is used; SIGINT or SIGTERM stop it before the next epoch starts (Terminated)."""
        self.executor = executor
        with stop_requests() as executor.stop:
            for frozen in self.study.get_trials(deepcopy=False):
                if frozen.state == TrialState.RUNNING:
                    self._resume(frozen)
                else:
                    self.first_of.setdefault(self._trials_key(frozen.number, frozen.params), frozen.number)
            self._fill()
            while any(setting.running for setting in self.active.values()):
                key, outcome = self.executor.next()
                number, epoch = (int(part) for part in key.split("-")[1:3])
                self._ended(self.active[number], key, epoch, outcome)
                self._fill()

    def _trials_key(self, number: int, values: dict) -> tuple[str, ...]:
        return tuple(trial.id for trial in setting_trials(self.sweep, self.out, number, values))

    def _fill(self) -> None:
        """Start new settings while workers are free and the budget allows a whole one."""
        while len(self.active) < self.executor.slots:
            if self.spent() + self.epochs * self.epoch_samples > self.sweep.search.budget:
                return
            reseed(self.study, self.sweep)
            trial = self.study.ask(distributions(self.sweep))
            if self._repeats(trial, trial.params):
                continue
            trials = setting_trials(self.sweep, self.out, trial.number, trial.params)
            adopt_trials(trials, self.out)  # e.g. a study begun again (journal deleted) finds its trials renamed
            setting = Setting(trial, trials, trials[0].epochs)
            self.active[trial.number] = setting
            self._train(setting, 1)

    def _repeats(self, trial: optuna.Trial, values: dict) -> bool:
        """If an earlier setting has the same trials: repeat its end now, or once it ends (True); else note this
        setting as the first with its trials (False)."""
        first = self.first_of.setdefault(self._trials_key(trial.number, values), trial.number)
        if first == trial.number:
            return False
        if first in self.active:
            self.repeats.setdefault(first, []).append(trial)
        else:
            self._repeat(trial, self.study.trials[first])
        return True

    def _repeat(self, trial: optuna.Trial, first: optuna.trial.FrozenTrial) -> None:
        """``trial`` ends as the setting ``first`` did: its reports, and its state and value."""
        trial.set_user_attr("repeats", first.number)
        reported = self.study.get_trials(deepcopy=False)[trial.number].intermediate_values  # before a stop
        for epoch, value in sorted(first.intermediate_values.items()):
            if epoch not in reported:
                trial.report(value, epoch)
        self.study.tell(trial, first.value if first.state == TrialState.COMPLETE else None, state=first.state)
        self.log(f"setting {trial.number} repeats setting {first.number}: {first.state.name.lower()}")

    def _resume(self, frozen: optuna.trial.FrozenTrial) -> None:
        """A setting that was running when the sweep stopped: report the epochs its trials finished since, then
        train on."""
        trial = optuna.Trial(self.study, frozen._trial_id)
        if self._repeats(trial, frozen.params):
            return
        trials = setting_trials(self.sweep, self.out, frozen.number, frozen.params)
        setting = Setting(trial, trials, trials[0].epochs, len(frozen.intermediate_values))
        self.active[frozen.number] = setting
        runs = [trial_run(t) for t in trials]
        if setting.reported and not self._decide(setting, frozen.intermediate_values[setting.reported], runs):
            return  # the sweep stopped between a report and its decision
        while all(run is not None and setting.reported + 1 in validated_epochs(run) for run in runs):
            if not self._report(setting, setting.reported + 1, runs):
                return
        self._train(setting, setting.reported + 1)

    def _train(self, setting: Setting, epoch: int) -> None:
        for group in packs(setting.trials, self.sweep.pack):
            key = f"setting-{setting.number}-{epoch}-{group[0].id}"
            setting.running |= {t.id for t in group}
            self.executor.submit(key, run_pack, group, self.out / "builds", epoch)

    def _ended(self, setting: Setting, key: str, epoch: int, outcome: list[dict] | BaseException) -> None:
        first = key.split("-", 3)[3]
        group = next(g for g in packs(setting.trials, self.sweep.pack) if g[0].id == first)
        setting.running -= {t.id for t in group}
        if isinstance(outcome, BaseException):
            setting.failed.append(f"{type(outcome).__name__}: {outcome}")
        else:
            setting.failed += [f"{row['trial']}: {row['status']}" for row in outcome
                               if row["status"] not in ("paused", "finished")]
        if setting.running:
            return
        if setting.failed:
            self.study.tell(setting.trial, state=TrialState.FAIL)
            self.log(f"setting {setting.number} failed: {'; '.join(setting.failed)}")
            self._close(setting)
            return
        if self._report(setting, epoch, [trial_run(t) for t in setting.trials]):
            self._train(setting, epoch + 1)

    def _report(self, setting: Setting, epoch: int, runs: list) -> bool:
        """Report epoch ``epoch``'s mean validation accuracy; end the setting (complete or pruned) or say it goes
        on (True)."""
        value = float(np.mean([run.accuracy("validation").loc[epoch] for run in runs]))
        setting.trial.report(value, epoch)
        setting.reported = epoch
        return self._decide(setting, value, runs)

    def _decide(self, setting: Setting, value: float, runs: list) -> bool:
        """After the report of ``value`` at epoch ``setting.reported``: complete, pruned, or go on (True)."""
        epoch = setting.reported
        if epoch == setting.epochs:
            self.study.tell(setting.trial, value)
            self.log(f"setting {setting.number} complete: validation {value:.4f} after {epoch} epochs")
        elif setting.trial.should_prune():
            for run in runs:  # before Optuna hears it: a stop in between resumes to the same decision
                run.set_status("pruned", f"after epoch {epoch} of {setting.epochs}: the setting's mean validation "
                               f"accuracy {value:.4f} is not among the best at this rung (biograd.study)")
            self.study.tell(setting.trial, state=TrialState.PRUNED)
            self.log(f"setting {setting.number} pruned: validation {value:.4f} after epoch {epoch}")
        else:
            return True
        self._close(setting)
        return False

    def _close(self, setting: Setting) -> None:
        """The setting has ended: the settings waiting to repeat it end as it did."""
        del self.active[setting.number]
        for trial in self.repeats.pop(setting.number, []):
            self._repeat(trial, self.study.trials[setting.number])

    def trials(self) -> list[tuple[optuna.trial.FrozenTrial, Trial]]:
        """Every setting's trials, with their setting (:func:`journal_trials`)."""
        return journal_trials(self.study, self.sweep, self.out)

    def rows(self) -> list[dict]:
        """Every setting's trials' rows of trials.csv."""
        rows = []
        for frozen, trial in self.trials():
            row = trial_row(trial, trial_run(trial))
            if frozen.state == TrialState.FAIL and row["status"] not in ENDED:
                row["status"] = "failed"
            rows.append(row)
        return rows

    def record(self) -> dict:
        """What the study did: settings by state, training samples used, the budget."""
        trials = self.study.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        trained = sum(len(t.intermediate_values) for t in trials if "repeats" not in t.user_attrs)
        return {"settings": len(states), **{state.name.lower(): states.count(state) for state in
                                            (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)},
                "repeated": len(trials) - len({t.user_attrs.get("repeats", t.number) for t in trials}),
                "samples trained": trained * self.epoch_samples, "budget used": self.spent(),
                "budget": self.sweep.search.budget,
                "journal": STUDY_FILE, "sampler": "TPE", "pruner": self.sweep.search.pruner and
                self.sweep.search.pruner.model_dump()}


def run_study(sweep: SweepFile, out: Path, *, scheduler: str | None = None, workers: int | None = None,
              serial: bool = False, log: Callable[[str], None] | None = None,
              accept_changes: bool = False) -> SweepResult:
    """Run (or continue) the sweep's Optuna study until its budget is used; then write the tables (best.json
    says what the study did). ``log``: one line per setting that ends. A trial whose run directory's files
    changed is refused before any work, unless ``accept_changes`` (:func:`~biograd.sweep.check_trials_unchanged`)."""
    with sweep_folder(sweep, out) as lock:
        study = Study(sweep, out, log)
        check_trials_unchanged([trial for _, trial in study.trials()], accept_changes)
        try:
            with Executor(serial, scheduler, workers) as executor:
                study.run(executor)
        except BaseException as err:  # the workers have ended: the trials they trained say why
            for setting in study.active.values():
                for trial in setting.trials:
                    stopped_mid_task(trial_run(trial), err)
            raise
        lock.check()
        return summarise(sweep, pd.DataFrame(study.rows()), out, {"study": study.record()})
