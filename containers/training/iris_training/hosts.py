"""Which host of a multi-instance training job trains: the leader; the others step aside.

A RandomForest gains nothing from several hosts in one job, yet `InstanceCount` may be above 1
(the pipeline parameter can be overridden per execution). Without this, every host would train,
log a run, register a version and race on the production alias.

SageMaker writes `/opt/ml/input/config/resourceconfig.json` into every training container with
`current_host` (this container's name on the job's network, e.g. `algo-1`) and `hosts` (every
container's name, sorted lexicographically): "How Amazon SageMaker AI provides training
information", Distributed training configuration,
https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html#your-algorithms-training-algo-running-container-dist-training

The leader is the first of the sorted `hosts`. Every host reads the same list, so every host
names the same leader without talking to the others; sorting here rather than trusting the
file's order keeps that true whatever order the list comes in. It is also the host SageMaker's
own training toolkit calls the master (`hosts[0]`, aws/sagemaker-training-toolkit
src/sagemaker_training/environment.py, `get_master_hostname`), and `algo-1` exists in every job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from iris_training.errors import UserError

_EXPECTED = (
    'a JSON object with "current_host" (a host name) and "hosts" (a non-empty list of host '
    "names that includes current_host)"
)


@dataclass(frozen=True)
class Cluster:
    """This container's host and every host of the job."""

    current_host: str
    hosts: tuple[str, ...]

    @property
    def leader(self) -> str:
        return sorted(self.hosts)[0]

    @property
    def is_leader(self) -> bool:
        return self.current_host == self.leader

    def follower_line(self) -> str:
        return (
            f"host {self.current_host} is a follower ({len(self.hosts)} hosts): only the leader "
            f"{self.leader} (first of the sorted hosts) trains, logs and registers; exiting"
        )


def read_cluster(path: Path) -> Cluster | None:
    """The job's hosts; None when the file is absent (a local run: one host, the leader)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read resource config file {path}: {err}") from err
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"resource config file {path} is not valid JSON ({err.msg}); expected {_EXPECTED}"
        ) from err
    current = raw.get("current_host") if isinstance(raw, dict) else None
    hosts = raw.get("hosts") if isinstance(raw, dict) else None
    if (
        not _is_name(current)
        or not isinstance(hosts, list)
        or not hosts
        or not all(_is_name(host) for host in hosts)
        or current not in hosts
    ):
        shown = text.strip().replace("\n", " ")
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        raise UserError(f"resource config file {path} holds {shown}; expected {_EXPECTED}")
    return Cluster(current_host=str(current), hosts=tuple(str(host) for host in hosts))


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
