"""`charterflow deploy --work-pool NAME`: every deployment of ``flows.serve.deployments()`` (with its
schedules, tags, description and parameter schema) registered to a Prefect work pool, so that
Prefect workers run the flows instead of the local runner of ``charterflow serve``/``up``.

How the worker finds the code: each deployment's entrypoint is the flow's **module path**
(``flows.membership.onboarding.onboard``), imported from the worker's Python environment, where
charterflow is installed. So nothing is uploaded or built:

- process pool (this machine or another with the same install): the worker runs each flow in a
  subprocess of its own environment. Its working directory (job variable ``working_dir``) is the
  directory ``deploy`` ran in unless ``--working-dir`` says otherwise, so relative settings
  (``.env``, ``CHARTERFLOW_HOME``) mean the same as for ``up``;
- Docker or Kubernetes pool: ``--image`` names an image with charterflow installed (the job
  variable ``image``); the same module paths are imported inside the container.

Re-running is safe: a deployment that exists (same flow and name) is updated in place, its
schedules replaced by the current ones. The runner of ``charterflow serve``/``up`` registers the
same deployments without a pool: run one or the other, not both.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import EntrypointType
from prefect.exceptions import ObjectNotFound
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

from connectors.errors import ConfigError
from flows.serve import deployments

__all__ = ["Registered", "deploy_to_pool", "ensure_pool", "module_entrypoint"]


@dataclass(frozen=True)
class Registered:
    """One deployment registered to the pool."""

    full_name: str
    deployment_id: str
    schedules: tuple[str, ...]
    tags: tuple[str, ...]
    entrypoint: str

    def line(self, pool: str) -> str:
        """``membership-renewal/daily  → pool  cron 0 9 * * *  [charterflow, membership]``."""
        when = ", ".join(self.schedules) or "no schedule"
        return f"registered {self.full_name}  → {pool}  {when}  [{', '.join(self.tags)}]  {self.entrypoint}"


def module_entrypoint(file_entrypoint: str, *, cwd: Path | None = None) -> str:
    """``path/to/module.py:fn`` (as ``flow.to_deployment`` writes it, relative to ``cwd``) →
    ``package.module.fn``, from the imported module whose file it is."""
    path, _, func = file_entrypoint.rpartition(":")
    target = ((cwd or Path.cwd()) / path).resolve()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == target:
            return f"{name}.{func}"
    raise ConfigError(f"cannot find the module of entrypoint {file_entrypoint!r} (is charterflow installed?)")


def _schedule_text(schedule: Any) -> str:
    inner = getattr(schedule, "schedule", schedule)
    if getattr(inner, "cron", None):
        return f"cron {inner.cron}"
    interval = getattr(inner, "interval", None)
    if interval is not None:
        return f"every {int(interval.total_seconds())}s"
    return type(inner).__name__


def ensure_pool(name: str, *, create: bool, pool_type: str) -> str:
    """The pool's type; with ``create`` an absent pool is created with the default base job
    template of ``pool_type`` (as ``prefect work-pool create NAME --type TYPE`` does)."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_work_pool(name).type
        except ObjectNotFound:
            if not create:
                raise ConfigError(
                    f"work pool {name!r} does not exist: add --create-pool, or create it with "
                    f"`prefect work-pool create {name} --type {pool_type}`"
                ) from None
        template = run_coro_as_sync(get_default_base_job_template_for_infrastructure_type(pool_type))
        if template is None:
            raise ConfigError(
                f"no base job template for work pool type {pool_type!r}: install its worker "
                f"package (e.g. prefect-docker, prefect-kubernetes) or create the pool with "
                f"`prefect work-pool create {name} --type {pool_type}`"
            )
        pool = client.create_work_pool(WorkPoolCreate(name=name, type=pool_type, base_job_template=template))
        return pool.type


def deploy_to_pool(
    *,
    work_pool: str,
    create_pool: bool = False,
    pool_type: str = "process",
    image: str | None = None,
    working_dir: Path | None = None,
    work_queue: str | None = None,
    job_variables: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> list[Registered]:
    """Register every deployment to ``work_pool`` (see the module docstring); one ``echo`` line
    per deployment. Raises ``ConfigError`` for a missing pool or an option the pool cannot take."""
    kind = ensure_pool(work_pool, create=create_pool, pool_type=pool_type)
    extra = dict(job_variables or {})
    if kind == "process":
        if image:
            raise ConfigError(f"work pool {work_pool!r} is a process pool: it runs no images (drop --image)")
        extra.setdefault("working_dir", str((working_dir or Path.cwd()).resolve()))
    elif working_dir is not None:
        extra.setdefault("working_dir", str(working_dir))
    done: list[Registered] = []
    unique: dict[str, Any] = {}
    for deployment in deployments():
        full_name = f"{deployment.flow_name}/{deployment.name}"
        if full_name in unique:  # the same name twice would update one deployment twice
            echo(f"note: {full_name} is declared twice; registering it once")
        unique[full_name] = deployment
    for deployment in unique.values():
        entrypoint = module_entrypoint(deployment.entrypoint)
        deployment.entrypoint = entrypoint
        deployment._entrypoint_type = EntrypointType.MODULE_PATH
        deployment._path = None  # nothing to download: the module comes from the installed package
        deployment.work_pool_name = work_pool
        if work_queue:
            deployment.work_queue_name = work_queue
        deployment.job_variables = {**(deployment.job_variables or {}), **extra}
        deployment_id = deployment.apply(work_pool_name=work_pool, image=image)
        item = Registered(
            full_name=f"{deployment.flow_name}/{deployment.name}",
            deployment_id=str(deployment_id),
            schedules=tuple(_schedule_text(s) for s in deployment.schedules or ()),
            tags=tuple(deployment.tags or ()),
            entrypoint=entrypoint,
        )
        echo(item.line(work_pool))
        done.append(item)
    return done
