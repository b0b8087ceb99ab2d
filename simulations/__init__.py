"""attune simulations: synthetic worlds, policy comparisons, off-policy evaluation, audits.

``simulations`` imports ``bandit``, ``collab`` and ``streaming`` (never ``api``). The pieces a
notebook needs::

    from simulations import simulate, write_report, evaluate, replay_target, audit, load_log
"""

from simulations.audit import AttributeAudit, GroupStat, audit, format_audit
from simulations.drivers import SIM_POLICIES
from simulations.logs import LogError, LoggedData, from_dict, load_log, load_log_frame, log_frame
from simulations.ope import ESTIMATORS, Estimate, evaluate, fit_ridge
from simulations.ope_synthetic import synthetic_log
from simulations.report import write_report
from simulations.runner import SimulationResult, simulate
from simulations.scenario import Scenario, ScenarioError, load_scenario, shipped_scenarios
from simulations.target import replay_target
from simulations.world import World

__all__ = [
    "ESTIMATORS",
    "SIM_POLICIES",
    "AttributeAudit",
    "Estimate",
    "GroupStat",
    "LogError",
    "LoggedData",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "World",
    "audit",
    "evaluate",
    "fit_ridge",
    "format_audit",
    "from_dict",
    "load_log",
    "load_log_frame",
    "load_scenario",
    "log_frame",
    "replay_target",
    "shipped_scenarios",
    "simulate",
    "synthetic_log",
    "write_report",
]
