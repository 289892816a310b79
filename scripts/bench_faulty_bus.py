"""Benchmark `robo deploy` on a lossy servo bus (issue 15): does it start and complete?

Each run is a fresh `robo deploy` process at the default ``rt_priority`` (or ``--rt-priority``)
driving a fake servo bus on a pty (``tests/fake_servos.py``, served from this process) that
drops every ``--drop-every``-th status packet from the first ping on: the 6-motor so101_arm
(Feetech) and the 2-motor diffdrive_base (Dynamixel), ``--runs`` runs each. A run *started*
when every motor got its torque on (connect, modes and torque survived the losses) and
*completed* when the process exited 0 with every tick of the episode in ``deploy.json``.
``cpu_s`` is the deploy process's CPU time. The fake servos stand in for hardware, which no
load on this machine delays: their thread runs at real-time priority ``FAKE_SERVO_PRIORITY``
(above the loop's) where that is permitted, so a run fails for the deploy process's faults,
not because other jobs on a busy machine kept the fake from answering. The kernel's tty work
between the two sides keeps normal scheduling, as a USB adapter's does.

It also times the bus's reply wait on a loss-free fake, in this process: a 6-motor sync read,
and a ping nobody answers (the full packet timeout). ``cpu_ms`` is the reading thread's CPU
time: a busy wait burns the whole wait, a sleeping one almost none. ``--sdk-busy-wait``
measures everything with the vendor SDKs' own busy wait instead (the sleeping ``readPort``
of ``sdk_bus.LatencyTimeout`` removed), for comparison.

    python scripts/bench_faulty_bus.py [--runs 10] [--drop-every 7] [--rt-priority N]
                                       [--sdk-busy-wait] [--out scripts/results/faulty_bus.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_servos import WRITE, FakeDynamixelBus, FakeFeetechBus, FakeServoBus  # noqa: E402
from robot_configs import calibrated_arm, robot_yaml  # noqa: E402
from tiny_policies import make_policy  # noqa: E402

from robo_policies.commands.model_config import DeployConfig  # noqa: E402
from robo_policies.robots.control_loop import loop_priority  # noqa: E402
from robo_policies.robots.motors import Motor, MotorCommunicationError, motor_bus_class  # noqa: E402
from robo_policies.robots.motors.sdk_bus import LatencyTimeout  # noqa: E402

STS3215, XL430 = 777, 1060
ARM_IDS = range(1, 7)
DEFAULT_RT_PRIORITY = DeployConfig.rt_priority
FAKE_SERVO_PRIORITY = DEFAULT_RT_PRIORITY + 10
ROBO = [sys.executable, "-m", "robo_policies"]
ROBO_WITH_SDK_BUSY_WAIT = [sys.executable, "-c", "import sys; from robo_policies.robots.motors.sdk_bus import "
                           "LatencyTimeout; del LatencyTimeout.readPort; from robo_policies.cli.main import main; "
                           "sys.exit(main(sys.argv[1:]))"]
HZ, POLICY_HZ, DURATION_S = 20, 10, 2.0
ROBOTS: dict[str, dict[str, Any]] = {
    # robot: its fake bus, servo ids, the config (from tests/robot_configs.py) and a policy's inputs
    "so101_arm": dict(fake=FakeFeetechBus, model_number=STS3215, ids=ARM_IDS, config=calibrated_arm,
                      shapes={"joint_pos": (6,), "joint_vel": (6,)}, action_dim=6, action_range=0.3),
    "diffdrive_base": dict(fake=FakeDynamixelBus, model_number=XL430, ids=range(1, 3),
                           config=lambda tmp: robot_yaml(tmp, "diffdrive_base"),
                           shapes={"base_pose": (4,), "base_vel": (2,)}, action_dim=2, action_range=3.0),
}


def torque_was_enabled(fake: FakeServoBus) -> set[int]:
    """The ids that received a confirmed write of torque_enable = 1."""
    address, n = fake.registers["torque_enable"][0], fake.address_size
    return {instruction.motor_id for instruction in fake.instructions if instruction.code == WRITE
            and int.from_bytes(instruction.params[:n], "little") == address and instruction.params[n:] == b"\x01"}


def deploy_once(robo: list[str], spec: dict[str, Any], tmp: Path, drop_every: int,
                rt_priority: int | None) -> dict[str, Any]:
    """One `robo deploy` process (``robo``: the command that runs it) on a fresh lossy fake bus."""
    config, policy, out = spec["config"](tmp), tmp / "policy", tmp / "deploy"
    make_policy(shapes=spec["shapes"], action_dim=spec["action_dim"],
                action_range=spec["action_range"]).save(policy, metadata={"task": None})
    command = [*robo, "deploy", f"robot={config}", f"checkpoint={policy}",
               f"hz={HZ}", f"policy_hz={POLICY_HZ}", f"duration_s={DURATION_S}", f"out={out}", "progress=false"]
    if rt_priority is not None:
        command.append(f"rt_priority={rt_priority}")
    with loop_priority(FAKE_SERVO_PRIORITY):  # the fake's serving thread inherits it
        fake = spec["fake"]({motor_id: spec["model_number"] for motor_id in spec["ids"]})
    with fake:
        fake.drop_every(drop_every)
        start, cpu_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([*command, f"port={fake.port}"], capture_output=True, text=True, timeout=600)
        seconds, cpu_after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
        started = torque_was_enabled(fake) >= set(spec["ids"])
        dropped = fake.dropped
    report = json.loads((out / "deploy.json").read_text()) if done.returncode == 0 else {}
    expected_ticks = round(DURATION_S * HZ)
    return {"started": started, "completed": done.returncode == 0 and report.get("ticks") == expected_ticks,
            "exit_code": done.returncode, "error": done.stderr.strip().splitlines()[-1:] if done.returncode else [],
            "seconds": round(seconds, 2),
            "cpu_s": round(cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime, 2),
            "dropped_status_packets": dropped,
            **{key: report.get(key) for key in ("bus_retries", "rt_priority", "ticks", "period_ms_p50",
                                                 "period_ms_p99", "period_ms_max", "missed_deadlines")}}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    finished = [run for run in runs if run["completed"]]

    def worst(key: str) -> float | None:
        return max((run[key] for run in finished), default=None)

    return {"runs": len(runs), "started": sum(run["started"] for run in runs), "completed": len(finished),
            "bus_retries": [run["bus_retries"] for run in runs],
            "dropped_status_packets": [run["dropped_status_packets"] for run in runs],
            "cpu_s_median": float(np.median([run["cpu_s"] for run in runs])),
            "rt_priority_obtained": sorted({run["rt_priority"] for run in finished}),
            "period_ms_p50_worst": worst("period_ms_p50"), "period_ms_p99_worst": worst("period_ms_p99"),
            "missed_deadlines_total": sum(run["missed_deadlines"] for run in finished)}


def timed(call: Callable[[], object], repeats: int) -> dict[str, float]:
    """Wall and this thread's CPU milliseconds per call (p50 and p99 of the wall time)."""
    wall, cpu = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.thread_time()
        call()
        wall.append((time.perf_counter() - wall_start) * 1000.0)
        cpu.append((time.thread_time() - cpu_start) * 1000.0)
    return {"wall_ms_p50": round(float(np.percentile(wall, 50)), 3),
            "wall_ms_p99": round(float(np.percentile(wall, 99)), 3),
            "cpu_ms_mean": round(float(np.mean(cpu)), 3)}


def serve_fake_arm(ports: mp.Queue, stop: EventType) -> None:
    """so101_arm's servos, loss-free, until ``stop`` is set (in a process of their own)."""
    with FakeFeetechBus(dict.fromkeys(ARM_IDS, STS3215)) as fake:
        ports.put(fake.port)
        stop.wait()


def reply_wait(repeats: int, rt_priority: int) -> dict[str, Any]:
    """A 6-motor sync read and an unanswered ping, from a thread at ``rt_priority``, with the
    servos in another process (as in a deploy run: no interpreter lock shared with them)."""
    context = mp.get_context("fork")
    ports, stop = context.Queue(), context.Event()
    server = context.Process(target=serve_fake_arm, args=(ports, stop), daemon=True)
    server.start()
    bus = motor_bus_class("feetech")(ports.get(timeout=30), [Motor(f"m{i}", i, "sts3215") for i in ARM_IDS])
    try:
        with bus, loop_priority(rt_priority) as real_time:
            return {"rt_priority": rt_priority if real_time else 0,
                    "sync_read_6_motors": timed(lambda: bus.read("present_position"), repeats),
                    "unanswered_ping": timed(lambda: bus.ping(99), max(1, repeats // 10))}
    except MotorCommunicationError as err:  # seen with the SDKs' busy wait at real-time priority
        return {"rt_priority": rt_priority, "failed": str(err)}
    finally:
        stop.set()
        server.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--drop-every", type=int, default=7)
    parser.add_argument("--rt-priority", type=int, default=None, help="default: robo deploy's own")
    parser.add_argument("--sdk-busy-wait", action="store_true", help="the SDKs' own busy reply wait")
    parser.add_argument("--out", default="scripts/results/faulty_bus.json")
    args = parser.parse_args()

    robo = ROBO
    if args.sdk_busy_wait:
        del LatencyTimeout.readPort
        robo = ROBO_WITH_SDK_BUSY_WAIT
    load_before = os.getloadavg()
    latency = [reply_wait(repeats=500, rt_priority=priority) for priority in (0, DEFAULT_RT_PRIORITY)]
    print(f"reply wait: {json.dumps(latency)}")
    robots = {}
    for robot, spec in ROBOTS.items():
        runs = []
        for index in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(deploy_once(robo, spec, Path(tmp), args.drop_every, args.rt_priority))
            print(f"{robot} run {index + 1}: {json.dumps(runs[-1])}", flush=True)
        robots[robot] = {"summary": summarize(runs), "runs": runs}
        print(f"{robot}: {json.dumps(robots[robot]['summary'])}")
    record = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"drop_every": args.drop_every, "rt_priority": "default" if args.rt_priority is None else args.rt_priority, "hz": HZ,
                     "policy_hz": POLICY_HZ, "duration_s": DURATION_S, "sdk_busy_wait": args.sdk_busy_wait},
        "reply_wait": latency, "robots": robots,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
