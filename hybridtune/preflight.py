"""`hybridtune run --dry-run`: check config, data and credentials without calling a model.

Returns lines to print; raises UserError on the first problem that would stop the run.
"""
from __future__ import annotations

from pathlib import Path

from .config import ExperimentConfig
from .domain import load_domain
from .errors import UserError
from .llm import LLMPool


def preflight(cfg: ExperimentConfig) -> list[str]:
    lines = [f"config: {cfg.source_path} ok (run dir {cfg.run_dir})"]
    dom = load_domain(cfg.domain)
    lines.append(
        f"domain: {dom.name}: {len(dom.techniques)} techniques, {len(dom.distortions)} distortions, "
        f"{len(dom.emotions)} emotions"
    )
    missing = [p for p in cfg.real.inputs if not Path(p).exists()]
    if missing:
        raise UserError(f"real.inputs: {', '.join(missing)} not found; fix the paths or remove them")
    lines.append(f"real data: {len(cfg.real.inputs)} input path(s) found")
    pool = LLMPool(cfg)
    for role, rc in cfg.roles.items():
        be = pool.backend(rc.endpoint)
        be.check()
        ep = cfg.endpoints[rc.endpoint]
        where = ep.base_url or "in-process"
        lines.append(f"role {role}: {ep.backend} {rc.model or ep.model} @ {where}: credentials/files ok")
    if cfg.llm.budget_usd is not None:
        lines.append(f"budget: ${cfg.llm.budget_usd:.2f} cap")
    lines.append("dry run: no model was called, nothing was spent")
    return lines
