"""Early-exit networks (EDANAS, NACHOS): exit heads, the network, per-exit costs and exit policies."""

from early_exit.costs import ExitCosts, average_macs, exit_costs
from early_exit.heads import DEFAULT_HEAD, ExitHead, HeadConfig, build_heads
from early_exit.model import (
    EXIT_STAGES,
    EarlyExitNet,
    ExitOutputs,
    ExportableExits,
    build_early_exit_net,
    collect_outputs,
)
from early_exit.policy import (
    POLICIES,
    ExitPolicy,
    PolicyResult,
    create_policy,
    evaluate_policy,
    list_policies,
    register_policy,
    repair_epsilon,
    tune_epsilon,
)

__all__ = [
    "DEFAULT_HEAD",
    "EXIT_STAGES",
    "POLICIES",
    "EarlyExitNet",
    "ExitCosts",
    "ExitHead",
    "ExitOutputs",
    "ExitPolicy",
    "ExportableExits",
    "HeadConfig",
    "PolicyResult",
    "average_macs",
    "build_early_exit_net",
    "build_heads",
    "collect_outputs",
    "create_policy",
    "evaluate_policy",
    "exit_costs",
    "list_policies",
    "register_policy",
    "repair_epsilon",
    "tune_epsilon",
]
