"""``robo deploy``: run a trained policy on a robot, or on its MuJoCo twin with ``sim=true``.

The same pieces run in both cases: the robot's safety chain and e-stop, the policy worker
thread and the fixed-rate loop. ``deploy.json`` reports the success rate (twin episodes end
on the task's success test), the loop's timing (period p50/p99, missed deadlines) and how
often each safety filter intervened.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from robo_policies.utils.atomic import atomic_write_text
from robo_policies.envs.registry import get_task
from robo_policies.envs.runner import ChunkPolicy
from robo_policies.checkpoints import load_saved, resolve_saved, saved_metadata
from robo_policies.commands.evaluate import make_warm_start, sampling_overrides
from robo_policies.robots.bus_robot import BusRobot
from robo_policies.robots.config import load_robot_config
from robo_policies.robots.control_loop import LoopStats, PolicyWorker, loop_priority, run_episode
from robo_policies.robots.factory import make_robot
from robo_policies.robots.robot import Robot
from robo_policies.robots.signals import Terminated, stop_signals
from robo_policies.robots.sim_twin import SimTwin
from robo_policies.policy import require_observation_keys
from robo_policies.utils.errors import ConfigError, one_line


def deploy(cfg: DictConfig) -> dict[str, Any]:
    """Run ``robo deploy`` with its composed config; returns what ``deploy.json`` holds."""
    if not cfg.checkpoint:
        raise ConfigError("checkpoint=<dir> is required (a saved policy or a run directory)")
    robot_config = load_robot_config(cfg.robot)
    policy_dir = resolve_saved(cfg.checkpoint)
    policy = load_saved(policy_dir, overrides=sampling_overrides(cfg))
    metadata = saved_metadata(policy_dir)
    policy_task = metadata.get("task")
    policy.warm_start = make_warm_start(cfg, policy_task or robot_config.sim_task, policy, str(policy_dir))
    step_s = _policy_step(cfg, policy_task, robot_config.sim_task)
    hz = cfg.hz or 1.0 / step_s
    if not 1.0 <= hz <= 500.0:
        raise ConfigError(f"hz must be in [1, 500], got {hz}")
    if cfg.sim and policy_task and robot_config.sim_task and policy_task != robot_config.sim_task:
        if get_task(policy_task).state_task != robot_config.sim_task:
            raise ConfigError(f"checkpoint {policy_dir} was trained on task {policy_task!r}, but "
                              f"{robot_config.name}'s twin runs {robot_config.sim_task!r}")
        # the twin's scene seen through the robot's cameras: the twin renders them in the loop
        robot_config = dataclasses.replace(robot_config, sim_task=policy_task)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    torch.set_num_threads(max(1, cfg.threads))
    sys.setswitchinterval(0.001)  # the loop thread gets the interpreter back within 1 ms

    robot = make_robot(robot_config, sim=cfg.sim, period_s=1.0 / hz, port=cfg.port or None,
                       twin_env_kwargs=metadata.get("env_kwargs"))
    provided = {**robot.observation_features, **robot.fit_cameras(policy.obs_shapes)}
    _require_policy_fits(policy, provided, robot.action_dim, robot_config.name)
    worker = PolicyWorker(policy, step_s)
    stats = LoopStats(period_s=1.0 / hz)
    outcomes = []
    realtime = cfg.realtime or not cfg.sim
    real_time_priority = False
    fault: str | None = None
    try:
        with stop_signals(robot, robot_config.estop.signal), robot:
            worker.start()  # before the loop's priority: the worker keeps normal scheduling
            with loop_priority(cfg.rt_priority if realtime else 0) as real_time_priority:
                bar = tqdm(range(cfg.episodes), desc=f"deploy {robot_config.name}", disable=not cfg.progress)
                for episode in bar:
                    seed = cfg.seed + episode
                    policy.reset(seed=seed)
                    if isinstance(robot, SimTwin):
                        robot.start_episode(seed)
                        limit, done = robot.horizon_s, robot.is_success
                    else:
                        limit, done = cfg.duration_s, (lambda: False)
                    outcome = run_episode(robot, worker, hz, limit, stats, done=done, realtime=realtime,
                                          lead_steps=cfg.lead_steps)
                    outcomes.append(outcome)
                    robot.stop()
                    bar.set_postfix(success=f"{np.mean([o.success for o in outcomes]):.0%}")
    except BaseException as err:  # a port lost, a signal, Ctrl-C: the report says so
        fault = _fault(err)
        raise
    finally:
        worker.stop()
        report = {
            "robot": robot_config.name, "sim": bool(cfg.sim), "checkpoint": str(policy_dir),
            "hz": hz, "policy_step_s": step_s, "sampler": cfg.sampler,
            "rt_priority": cfg.rt_priority if real_time_priority else 0,
            "bus_retries": robot.bus.retry_count if isinstance(robot, BusRobot) else None,
            "fault": fault,
            "episodes": len(outcomes),
            "success_rate": float(np.mean([o.success for o in outcomes])) if cfg.sim and outcomes else None,
            **stats.summary(),
            "inference_ms_p50": _percentile(worker.inference_ms, 50),
            "inference_ms_p99": _percentile(worker.inference_ms, 99),
            "safety_interventions": dict(robot.safety.interventions),
            "cameras": _camera_report(robot),
            "episode_ticks": [o.ticks for o in outcomes],
            "episode_success": [o.success for o in outcomes],
        }
        atomic_write_text(out / "deploy.json", json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    return report


def _camera_report(robot: Robot) -> dict[str, Any]:
    """Per camera: the age of the frames the policy saw (p50/p99) and what the camera dropped
    (a twin renders its cameras at each observation: their age is the rendering's)."""
    report = {}
    for name, camera in robot.cameras.items():
        ages_ms = [1000 * age for age in robot.frame_ages[name]]
        stats = camera.stats()
        report[name] = {"frame_age_ms_p50": _percentile(ages_ms, 50), "frame_age_ms_p99": _percentile(ages_ms, 99),
                        "frames": stats.frames, "dropped": stats.dropped, "fps": stats.fps}
    return report


def _fault(err: BaseException) -> str:
    """What ended a run before its episodes did, in one line for deploy.json."""
    if isinstance(err, Terminated):
        return f"terminated by {signal.Signals(int(err.code) - 128).name}"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"{type(err).__name__}: {one_line(err)}"


def _require_policy_fits(policy: ChunkPolicy, provided: dict[str, tuple[int, ...]], action_dim: int,
                         robot_name: str) -> None:
    """Refuse, before the robot is connected (so before torque is on), a policy that reads an
    observation the robot does not provide or provides in another shape, or whose actions
    are not the robot's size."""
    needed = policy.obs_shapes
    require_observation_keys(provided, needed, f"{robot_name}'s observation")
    wrong = {key: (tuple(needed[key]), tuple(provided[key])) for key in needed
             if tuple(needed[key]) != tuple(provided[key])}
    if wrong:
        raise ConfigError(f"{robot_name} provides observations of other shapes than the policy reads "
                          f"(key: policy, robot): {wrong}")
    if policy.action_dim != action_dim:
        raise ConfigError(f"the policy's actions have {policy.action_dim} dimensions, but {robot_name} takes "
                          f"{action_dim}")


def _policy_step(cfg: DictConfig, policy_task: str | None, sim_task: str | None) -> float:
    """Seconds between the policy's actions: ``policy_hz`` if given, else its task's control period."""
    if cfg.policy_hz:
        return 1.0 / cfg.policy_hz
    task_name = policy_task or sim_task
    if not task_name:
        raise ConfigError("the checkpoint records no task: give policy_hz=<the rate it was trained at>")
    env = get_task(task_name).env().unwrapped
    try:
        return float(env.control_dt)
    finally:
        env.close()


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def format_report(report: dict[str, Any]) -> str:
    """The results table printed at the end of a run."""
    rows = [("robot", f"{report['robot']}{' (sim)' if report['sim'] else ''}"),
            ("episodes", str(report["episodes"]))]
    if report["success_rate"] is not None:
        rows.append(("success rate", f"{report['success_rate']:.0%}"))
    rows += [("loop", f"{report['hz']:g} Hz (target period {report['target_period_ms']} ms)"),
             ("period p50 / p99", f"{report['period_ms_p50']} / {report['period_ms_p99']} ms"),
             ("missed deadlines", f"{report['missed_deadlines']} of {report['ticks']} ticks"),
             ("starved ticks", str(report["starved_ticks"])),
             *([("bus retries", str(report["bus_retries"]))] if report["bus_retries"] is not None else []),
             ("inference p50 / p99", f"{report['inference_ms_p50']} / {report['inference_ms_p99']} ms"),
             ("safety interventions", json.dumps(report["safety_interventions"]))]
    for name, camera in report["cameras"].items():
        rows.append((f"camera {name}", f"frame age p50 / p99 {camera['frame_age_ms_p50']} / "
                     f"{camera['frame_age_ms_p99']} ms, {camera['dropped']} dropped of {camera['frames']}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
