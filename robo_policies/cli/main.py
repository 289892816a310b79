"""The ``robo`` command: one entry point, one subcommand per job.

Subcommands that run a job (``collect``, ...) take Hydra-style ``key=value`` overrides of a
typed config (see ``robo_policies/commands/config.py``), imported only when a command
runs or shows its settings, so ``robo --help`` starts without torch; dataset tools take
paths. Bad input prints one line naming the file, key or value and exits with status 2
(``main``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import yaml
from omegaconf import DictConfig, OmegaConf

from robo_policies.utils.errors import ConfigError, one_line
from robo_policies.utils.plugins import load_plugins

if TYPE_CHECKING:
    from robo_policies.robots.cameras import CameraConfig
    from robo_policies.robots.keyboard import Keyboard
    from robo_policies.robots.robot import Robot
    from robo_policies.robots.config import RobotConfig

EPILOG_OVERRIDES = "Settings (override with key=value):\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robo",
        description="robo-policies: collect demonstrations, train and run robot policies.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `robo <command> --help` for a command's settings.",
    )
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    for name, schema, summary, example, run in (
        ("collect", "CollectConfig", "record scripted-expert demonstrations into a zarr dataset",
         "robo collect task=arm_pick_place episodes=50 out=data/arm.zarr seed=7", _collect),
        ("train", "TrainRunConfig", "train a policy on a dataset (resumable; torchrun for N processes)",
         "robo train task=diffdrive_nav policy=diffusion out=runs/nav train.steps=3000 seed=0\n"
         "  robo train dataset=data/lift.zarr out=runs/lift   (a converted dataset: no task)\n  torchrun --nproc_per_node=2 -m robo_policies train ...", _train),
        ("eval", "EvalRunConfig", "evaluate a saved policy in simulation: results table, eval.json, video",
         "robo eval checkpoint=runs/nav episodes=50 seed=100000\n"
         "  robo eval checkpoint=runs/x env.id=MyEnv-v0 env.import=my_pkg", _eval),
        ("compose", "ComposeConfig",
         "compose trained policies at test time (GPC): search weights on validation seeds, save the best",
         "robo compose checkpoints=[runs/a,runs/b] search=grid step=0.1 episodes=50 out=outputs/ab\n"
         "  robo eval checkpoint=outputs/ab   (test the chosen composition on the test seeds)", _compose),
        ("finetune", "FinetuneConfig",
         "fine-tune a trained policy online in simulation (EXPO, PA-RL, RLPD baseline; resumable)",
         "robo finetune checkpoint=runs/arm algo=expo env_steps=50000 out=runs/arm_expo seed=0\n"
         "  robo eval checkpoint=runs/arm_expo   (the fine-tuned policy, acting as it was trained)",
         _finetune),
        ("deploy", "DeployConfig",
         "run a trained policy on a robot or its MuJoCo twin: safety chain, fixed-rate loop, deploy.json",
         "robo deploy robot=so101_arm checkpoint=outputs/demo/arm_pick_place/checkpoint sim=true "
         "episodes=20 out=outputs/deploy/arm\n"
         "  robo deploy robot=diffdrive_base checkpoint=runs/nav hz=50 sim=true   (50 Hz loop, 10 Hz policy)",
         _deploy),
        ("record", "RecordConfig", "teleoperate a robot into a crash-safe zarr dataset or LeRobot directory",
         "robo record robot=diffdrive_base out=data/real_nav.zarr episodes=20 fps=10 episode_s=30\n"
         "robo record robot=so101 out=data/pick format=lerobot task='pick the cube'\n"
         "  (an existing dataset is appended to; Enter starts/ends an episode, Esc stops)", _record),
        ("replay", "ReplayConfig", "send a recorded episode's actions to the robot again, through its safety chain",
         "robo replay robot=diffdrive_base dataset=data/real_nav.zarr episode=0", _replay),
        ("demo", "DemoConfig", "the main job: collect, train and evaluate on the built-in tasks",
         "robo demo   (what `make demo` runs; tasks=[diffdrive_nav] for one task)", _demo),
    ):
        _add_settings_command(commands, name, schema, summary, example, run)

    bench = commands.add_parser(
        "bench", help="measure inference latency and training throughput (JSON + table)",
        description="Measure inference latency and training throughput of every head; write JSON records.",
    )
    bench_commands = bench.add_subparsers(dest="bench_command", metavar="<what>", required=True)
    for name, schema, summary in (
        ("inference", "BenchInferenceConfig",
         "model-call latency per head x sampler x steps, backbone and thread count"),
        ("train", "BenchTrainConfig",
         "training throughput and peak memory of mini-batched denoising (samples_per_obs=M)"),
    ):
        command = _add_settings_command(bench_commands, name, schema, summary,
                                        f"robo bench {name} out=outputs/bench/{name}.json", _bench)
        command.set_defaults(bench_name=name)

    robot_commands = _command_group(
        commands, "robot", "set up, calibrate, check and teleoperate a real robot (hardware/)",
        "Set up, calibrate, check and teleoperate a real robot. In order: find-port, setup-motors, "
        "calibrate, check, teleop; then `robo record` and `robo deploy`.")
    robot_list = robot_commands.add_parser(
        "list", help="every robot config in hardware/: kind, bus, twin task, motors and ids",
        description="List every robot config in hardware/: kind, bus, twin task, motors and ids.",
    )
    robot_list.set_defaults(run=_robot_list)
    find_port = robot_commands.add_parser(
        "find-port", help="name the bus adapter's serial port (unplug it when asked)",
        description="List the serial ports, ask you to unplug the bus adapter, and name the port that "
        "disappeared. No settings.",
    )
    find_port.set_defaults(run=_robot_find_port)
    for name, schema, summary, example, run in (
        ("setup-motors", "RobotSetupMotorsConfig",
         "give each servo its configured id and baud rate, one servo on the bus at a time",
         "robo robot setup-motors robot=so101_arm port=/dev/ttyACM0", _robot_setup_motors),
        ("calibrate", "RobotToolConfig",
         "torque off, move the robot by hand: zero pose, joint ranges or wheel directions -> calibration.json",
         "robo robot calibrate robot=so101_arm", _robot_calibrate),
        ("check", "RobotCheckConfig",
         "read every motor, check ranges, e-stop and the safety chain (hold, NaN; move=true also sends "
         "them and one small step); exit 1 naming a failure",
         "robo robot check robot=diffdrive_base port=/dev/ttyUSB0 [move=true]", _robot_check),
        ("teleop", "RobotTeleopConfig",
         "drive a base (w/s/a/d, q/e omni, x stop) or nudge an arm's joints (1-9, shift+1-9) by keyboard",
         "robo robot teleop robot=diffdrive_base hz=20 drive.speed=0.15\n"
         "  (space latches the e-stop, r resets it, Esc quits)", _robot_teleop),
    ):
        _add_settings_command(robot_commands, name, schema, summary, example, run)

    camera_commands = _command_group(
        commands, "camera", "find, snap and measure cameras (USB through OpenCV, RealSense, or a replayed recording)",
        "Find video devices, save a frame, and measure cameras as the control loop sees them.")
    camera_list = camera_commands.add_parser(
        "list", help="every /dev/video* device (whether OpenCV opens it, its default mode) and RealSense",
        description="Open every /dev/video* device (or the devices given) with OpenCV and print whether "
        "it opens and its default width, height and fps; with --modes, also the common modes it "
        "takes. Then the serial numbers of connected RealSense cameras (with the realsense extra).",
    )
    camera_list.add_argument("devices", nargs="*", help="devices to try instead of /dev/video* (index or path)")
    camera_list.add_argument("--modes", action="store_true",
                             help="try common width x height x fps modes on each device (a few seconds each)")
    camera_list.set_defaults(run=_camera_list)
    for name, schema, summary, example, run in (
        ("snap", "CameraSnapConfig", "save one frame of a camera, after its warm-up",
         "robo camera snap device=/dev/video0 out=frame.png   (or robot=so101_arm camera=wrist)", _camera_snap),
        ("check", "CameraCheckConfig",
         "read cameras as the control loop would: achieved fps, frame age p50/p99, dropped frames -> JSON",
         "robo camera check robot=so101_arm seconds=5   (or device=0 width=640 height=480 fps=30)", _camera_check),
    ):
        _add_settings_command(camera_commands, name, schema, summary, example, run)

    tasks = commands.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(run=_tasks)

    dataset_commands = _command_group(commands, "dataset", "inspect, check and convert datasets",
                                      "Inspect, check and convert datasets.")
    dataset_path = "a .zarr dataset or a LeRobot directory"
    for name, summary, description, run, arguments in (
        ("info", "episodes, steps, keys with shapes and dtypes, action ranges",
         "Print episodes, steps, keys with shapes and dtypes, and action ranges.",
         _dataset_info, [("path", dataset_path)]),
        ("validate", "check a dataset end to end; exit 1 naming the first problem",
         "Read every chunk of a dataset and check its structure, episode boundaries, array lengths, the "
         "presence of data/action and the absence of NaN/inf. Exits 1 with a message naming the first problem.",
         _dataset_validate, [("path", dataset_path)]),
        ("convert", "convert between robomimic HDF5, OGBench npz, LeRobot directories and zarr",
         "Convert a dataset; the direction follows the suffixes: .hdf5/.h5 -> .zarr, .zarr -> .hdf5, "
         ".npz -> .zarr; a LeRobot directory (meta/info.json) -> .zarr, and .zarr -> a LeRobot v3.0 "
         "directory with format=lerobot. Options as key=value, e.g. filter_key=train (robomimic mask), "
         "images=png (LeRobot, lossless), overwrite=true.",
         _dataset_convert, [("src", "source file or directory"), ("dst", "destination path"), OPTIONS]),
        ("view", "one episode as a video: cameras side by side over plots of state and action",
         "Draw one episode: every camera side by side, under them the low-dimensional observations and "
         "the actions over the episode with a cursor at the present step, and the episode's task string. "
         "Options: episode=<i> (0), out=<file.mp4|file.html> (episode_<i>.mp4), fps=<f> (the recorded rate).",
         _dataset_view, [("path", dataset_path), OPTIONS]),
        ("stats", "per-key min/max/mean/std and a histogram of episode lengths",
         "Print per-key min, max, mean and std (per dimension; over every pixel for cameras) and write "
         "them as stats.json with a histogram of episode lengths (episode_lengths.png). Option: "
         "out=<dir> (default: outputs/stats/<dataset name>).",
         _dataset_stats, [("path", dataset_path), OPTIONS]),
    ):
        command = dataset_commands.add_parser(name, help=summary, description=description)
        for argument, text in arguments:
            if argument == "options":
                command.add_argument("options", nargs="*", metavar="key=value", help=text)
            else:
                command.add_argument(argument, help=text)
        command.set_defaults(run=run)
    return parser


OPTIONS = ("options", "settings as key=value")
"""The trailing ``key=value`` options of a dataset command."""


class _SettingsHelp(argparse.Action):
    """``--help`` of a settings command: its settings are listed from the typed config, which
    is imported only now, so ``robo --help`` and the other commands stay light."""

    def __init__(self, option_strings: list[str], dest: str, schema: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show this command's settings and exit")
        self.schema = schema

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from robo_policies.commands import config

        parser.epilog = EPILOG_OVERRIDES + config.config_help(config.settings_class(self.schema))
        parser.print_help()
        parser.exit()


def _command_group(commands: argparse._SubParsersAction, name: str, summary: str,
                   description: str) -> argparse._SubParsersAction:
    """``robo <name> <action>``: a command whose actions are subcommands."""
    group = commands.add_parser(name, help=summary, description=description)
    return group.add_subparsers(dest=f"{name}_command", metavar="<action>", required=True)


def _add_settings_command(commands: argparse._SubParsersAction, name: str, schema: str, summary: str,
                          example: str, run: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
    """A subcommand that takes ``key=value`` overrides of the config class named ``schema``
    (in ``commands/config.py``), whose settings its ``--help`` lists with their docs."""
    command = commands.add_parser(
        name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. Example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False,
    )
    command.add_argument("-h", "--help", action=_SettingsHelp, schema=schema)
    command.add_argument("overrides", nargs="*", metavar="key=value")
    command.set_defaults(run=run)
    return command


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """The composed settings of command ``name`` (Hydra is imported only for such commands)."""
    from robo_policies.commands.config import compose_config as compose

    return compose(name, overrides)


def _collect(args: argparse.Namespace) -> None:
    from robo_policies.envs import get_task
    from robo_policies.envs.collect import collect

    cfg = compose_config("collect", args.overrides)
    task = get_task(cfg.task.name)
    result = collect(
        task,
        out=cfg.out,
        episodes=cfg.episodes,
        seed=cfg.seed,
        action_noise=cfg.action_noise,
        noisy_labels=cfg.noisy_labels,
        keep_failed=cfg.keep_failed,
        max_attempts=cfg.max_attempts,
        overwrite=cfg.overwrite,
        resume=cfg.resume,
        env_kwargs=OmegaConf.to_container(cfg.task.env_kwargs),
        progress=cfg.progress,
        attrs={"collect_config": OmegaConf.to_container(cfg)},
    )
    print(result.format())


def _train(args: argparse.Namespace) -> None:
    from robo_policies.commands.model_config import train_run_config
    from robo_policies.policy import PolicyConfig
    from robo_policies.train.config import TrainConfig
    from robo_policies.train.trainer import train

    cfg = train_run_config(args.overrides)
    result = train(
        dataset=cfg.dataset,
        out=cfg.out,
        policy_config=PolicyConfig(**OmegaConf.to_container(cfg.policy)),
        config=TrainConfig(**OmegaConf.to_container(cfg.train)),
        seed=cfg.seed,
        resume=cfg.resume,
        progress=cfg.progress,
        run_config=OmegaConf.to_container(cfg),
    )
    if result.is_main:
        print(f"trained {result.steps} steps in {result.seconds:.0f} s, final loss "
              f"{result.final_loss:.4f}; policy: {result.policy_dir}")


def _eval(args: argparse.Namespace) -> None:
    from robo_policies.commands.evaluate import evaluate_checkpoint

    cfg = compose_config("eval", args.overrides)
    result, out = evaluate_checkpoint(cfg)
    print(result.format_table())
    print(f"wrote {out / 'eval.json'}")


def _compose(args: argparse.Namespace) -> None:
    from robo_policies.commands.compose import TIE_BREAK, results_table, run_compose, weights_label

    candidates, best, out = run_compose(compose_config("compose", args.overrides))
    print(results_table(candidates))
    print(f"best ({TIE_BREAK}): {weights_label(best.weights)}")
    print(f"wrote {out / 'search.json'}, {out / 'search.md'} and {out / 'checkpoint'}")


def _finetune(args: argparse.Namespace) -> None:
    from robo_policies.rl.finetune import finetune

    summary = finetune(compose_config("finetune", args.overrides))
    print(json.dumps(summary, indent=2))


def _deploy(args: argparse.Namespace) -> None:
    from robo_policies.commands.deploy import deploy

    deploy(compose_config("deploy", args.overrides))


def _record(args: argparse.Namespace) -> None:
    from robo_policies.robots.record import record
    from robo_policies.robots.teleop import DriveSettings, keyboard_session

    cfg = compose_config("record", args.overrides)
    if not cfg.out:
        raise ConfigError("out=<dataset.zarr> (or out=<dir> format=lerobot) is required")
    with _teleop_source(cfg) as controller_for, \
            keyboard_session(_robot_config(cfg), cfg.port or None, cfg.fps) as (robot, keys):
        record(robot, keys, cfg.out, cfg.episodes, cfg.fps, cfg.episode_s,
               DriveSettings(**OmegaConf.to_container(cfg.drive)), controller=controller_for(robot), task=cfg.task,
               image_size=cfg.image_size, format=cfg.format)


@contextmanager
def _teleop_source(cfg: DictConfig) -> Iterator[Callable[[Robot], Keyboard | None]]:
    """What drives the robot, opened before the robot is (a leader or gamepad that is missing
    or uncalibrated stops the start before any torque goes on): yields ``controller(robot)``,
    None for the keyboard (the robot kind's keys), else the gamepad of ``teleop=gamepad`` or the
    leader arm of ``teleop=leader``, connected to read only for the block."""
    if cfg.teleop == "keyboard":
        yield lambda robot: None
        return
    if cfg.teleop == "gamepad":
        from robo_policies.robots.gamepad import GamepadDrive, Joystick
        from robo_policies.robots.keyboard import DriveSettings

        joystick = Joystick(cfg.gamepad)
        try:
            yield lambda robot: GamepadDrive(robot, joystick, DriveSettings(**OmegaConf.to_container(cfg.drive)))
        finally:
            joystick.close()
        return
    if cfg.teleop != "leader":
        raise ConfigError(f"teleop={cfg.teleop!r}: use keyboard, leader or gamepad")
    if not cfg.leader:
        raise ConfigError("teleop=leader needs leader=<robot name or robot.yaml> (e.g. so101_leader)")
    from robo_policies.robots.config import load_robot_config
    from robo_policies.robots.leader import LeaderArm, leader_session

    with leader_session(load_robot_config(cfg.leader), cfg.leader_port or None) as leader:
        yield lambda robot: LeaderArm(leader, robot)


def _replay(args: argparse.Namespace) -> None:
    from robo_policies.robots.factory import make_robot
    from robo_policies.robots.replay_episode import recorded_actions, recorded_rate, replay_episode
    from robo_policies.robots.signals import stop_signals

    cfg = compose_config("replay", args.overrides)
    if not cfg.dataset:
        raise ConfigError("dataset=<recorded.zarr> is required")
    config = _robot_config(cfg)
    rate = cfg.fps or recorded_rate(cfg.dataset)
    robot = make_robot(config, period_s=1.0 / rate, port=cfg.port or None)
    actions = recorded_actions(robot, cfg.dataset, cfg.episode)  # a wrong dataset never powers the robot
    with stop_signals(robot, config.estop.signal), robot:
        replay_episode(robot, actions, rate)


def _robot_list(args: argparse.Namespace) -> None:
    from robo_policies.robots.config import load_robot_config, robot_names, robot_table

    print(robot_table([load_robot_config(name) for name in robot_names()]))


def _robot_find_port(args: argparse.Namespace) -> None:
    from robo_policies.robots.bus_setup import find_port

    find_port()


def _robot_setup_motors(args: argparse.Namespace) -> None:
    from robo_policies.robots.bus_setup import setup_motors

    cfg = compose_config("robot_setup_motors", args.overrides)
    setup_motors(_robot_config(cfg), cfg.port or None, latency_timer_ms=cfg.latency_ms)


def _robot_calibrate(args: argparse.Namespace) -> None:
    from robo_policies.robots.calibrate import calibrate_robot

    cfg = compose_config("robot_calibrate", args.overrides)
    calibrate_robot(_robot_config(cfg), cfg.port or None)


def _robot_check(args: argparse.Namespace) -> int:
    from robo_policies.robots.check import CheckFailed, check_robot

    cfg = compose_config("robot_check", args.overrides)
    try:
        check_robot(_robot_config(cfg), cfg.port or None, move=cfg.move, move_step=cfg.move_step)
    except CheckFailed as failure:  # the answer of the check, not a failure to run it
        print(f"FAIL: {failure}", file=sys.stderr)
        return 1
    print("PASS: every check")
    return 0


def _robot_teleop(args: argparse.Namespace) -> None:
    from robo_policies.robots.teleop import DriveSettings, keyboard_session, teleop

    cfg = compose_config("robot_teleop", args.overrides)
    with _teleop_source(cfg) as controller_for, \
            keyboard_session(_robot_config(cfg), cfg.port or None, cfg.hz) as (robot, keys):
        teleop(robot, keys, cfg.hz, DriveSettings(**OmegaConf.to_container(cfg.drive)), cfg.duration_s,
               controller=controller_for(robot))


def _camera_list(args: argparse.Namespace) -> None:
    from robo_policies.robots.cameras.camera import CameraError
    from robo_policies.robots.cameras.realsense import realsense_serials
    from robo_policies.robots.cameras.tools import find_cameras
    from robo_policies.robots.config import text_table

    found = find_cameras(args.devices or None, probe_modes=args.modes)
    if not found:
        print("no video devices (/dev/video*); plug a camera in, or name a device: robo camera list <path>")
    else:
        rows = [(d.device, "yes" if d.opened else "no", f"{d.width}x{d.height}" if d.opened else "-",
                 f"{d.fps:g}" if d.opened else "-",
                 *([" ".join(f"{w}x{h}@{fps:g}" for w, h, fps in d.modes) or "-"] if args.modes else []))
                for d in found]
        print(text_table(("device", "opens", "size", "fps", *(["modes taken"] if args.modes else [])), rows))
    try:
        serials = realsense_serials()
    except CameraError as missing:  # no realsense extra: say so in one line
        print(f"RealSense: not searched ({missing})")
        return
    if serials:
        print(text_table(("RealSense serial (device=)", "model"), serials))


def _cameras(cfg: DictConfig) -> dict[str, CameraConfig]:
    """The cameras a camera command works on: ``robot=``'s (all, or ``camera=``), else the one
    described by the command's own camera settings."""
    from robo_policies.robots.cameras import CameraConfig
    from robo_policies.robots.config import load_robot_config

    if not cfg.robot:
        fields = {key: cfg[key] for key in CameraConfig.__dataclass_fields__}
        return {cfg.camera or "camera": CameraConfig(**fields)}
    robot = load_robot_config(cfg.robot)
    if not robot.cameras:
        raise ConfigError(f"{robot.source}: robot {robot.name!r} declares no cameras (add a cameras: section)")
    if not cfg.camera:
        return dict(robot.cameras)
    if cfg.camera not in robot.cameras:
        raise ConfigError(f"{robot.source}: no camera {cfg.camera!r}; its cameras: {sorted(robot.cameras)}")
    return {cfg.camera: robot.cameras[cfg.camera]}


def _camera_snap(args: argparse.Namespace) -> None:
    from robo_policies.robots.cameras.tools import snap

    cfg = compose_config("camera_snap", args.overrides)
    cameras = _cameras(cfg)
    if len(cameras) > 1:
        raise ConfigError(f"camera=<name> is required: robot {cfg.robot!r} has cameras {sorted(cameras)}")
    (name, config), = cameras.items()
    written = snap(name, config, cfg.out)
    print(f"wrote {', '.join(map(str, written))} from camera {name!r}")


def _camera_check(args: argparse.Namespace) -> None:
    from robo_policies.robots.cameras.tools import check_camera
    from robo_policies.robots.config import text_table
    from robo_policies.utils.atomic import atomic_write_text

    cfg = compose_config("camera_check", args.overrides)
    reports = [check_camera(name, config, cfg.seconds, cfg.read_hz) for name, config in _cameras(cfg).items()]
    atomic_write_text(cfg.out, json.dumps([asdict(report) for report in reports], indent=2) + "\n")
    print(text_table(("camera", "fps asked", "fps got", "dropped", "age p50 ms", "age p99 ms", "size"),
                     [(r.name, f"{r.fps_configured:g}", f"{r.fps_achieved:g}", str(r.dropped),
                       f"{r.frame_age_ms_p50:g}", f"{r.frame_age_ms_p99:g}", "x".join(map(str, r.shape)))
                      for r in reports]))
    print(f"wrote {cfg.out}")


def _robot_config(cfg: DictConfig) -> RobotConfig:
    """The config named by ``robot=``, which every robot command needs."""
    from robo_policies.robots.config import load_robot_config

    if not cfg.robot:
        raise ConfigError("robot=<name> is required (see `robo robot list`)")
    return load_robot_config(cfg.robot)


def _demo(args: argparse.Namespace) -> None:
    from robo_policies.commands.demo import run_demo

    run_demo(compose_config("demo", args.overrides))


def _bench(args: argparse.Namespace) -> None:
    from robo_policies.commands import bench

    cfg = compose_config(f"bench_{args.bench_name}", args.overrides)
    if args.bench_name == "inference":
        records = bench.bench_inference(models=cfg.models, threads=cfg.threads, calls=cfg.calls)
    else:
        records = bench.bench_train(
            heads=cfg.heads, samples_per_obs=cfg.samples_per_obs, obs_kinds=cfg.obs,
            model=cfg.model, batch_size=cfg.batch_size, steps=cfg.steps, threads=cfg.threads,
        )
    print(bench.format_records(records))
    print(f"wrote {bench.write_records(records, cfg.out)}")


def _tasks(args: argparse.Namespace) -> None:
    from robo_policies.envs import get_task, task_names

    for name in task_names():
        task = get_task(name)
        extra = f"  [needs extra: {task.requires}]" if task.requires else ""
        print(f"{name:<22} horizon {task.horizon:<5} {task.description}{extra}")


def _dataset_info(args: argparse.Namespace) -> None:
    from robo_policies.data.validate import summarize_dataset

    print(summarize_dataset(args.path).format())


def _dataset_validate(args: argparse.Namespace) -> int:
    from robo_policies.data.validate import validate_dataset
    from robo_policies.utils.errors import DatasetError

    try:
        summary = validate_dataset(args.path)
    except DatasetError as problem:  # the answer of the check, not a failure to run it
        print(f"INVALID: {problem}", file=sys.stderr)
        return 1
    print(f"OK: {args.path}: {summary.n_episodes} episodes, {summary.n_steps} steps")
    return 0


def _dataset_convert(args: argparse.Namespace) -> None:
    from robo_policies.data.convert import convert

    options = dict(_parse_option(option) for option in args.options)
    convert(args.src, args.dst, **options)
    print(f"wrote {args.dst}")


def _dataset_view(args: argparse.Namespace) -> None:
    from robo_policies.data.view import view_episode

    options = _options(args.options, {"episode": 0, "out": "", "fps": 0.0})
    episode = int(options["episode"])
    view = view_episode(args.path, episode, options["out"] or f"episode_{episode}.mp4", float(options["fps"]))
    print(f"wrote {view.path}: {view.frames} frames of {view.width}x{view.height}, task {view.task or '(none)'!r}")


def _dataset_stats(args: argparse.Namespace) -> None:
    from robo_policies.data.stats import dataset_stats

    options = _options(args.options, {"out": f"outputs/stats/{Path(args.path).stem}"})
    _, table = dataset_stats(args.path, options["out"])
    print(table)
    print(f"wrote {Path(options['out']) / 'stats.json'} and {Path(options['out']) / 'episode_lengths.png'}")


def _options(texts: list[str], defaults: dict[str, object]) -> dict[str, object]:
    """``key=value`` options over ``defaults``; a key not among them is an error naming them."""
    options = dict(defaults)
    for text in texts:
        key, value = _parse_option(text)
        if key not in defaults:
            raise ConfigError(f"unknown option {key!r}; options: {', '.join(defaults)}")
        options[key] = value
    return options


def _parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with the value parsed as YAML (so ``true``, ``3`` and lists work)."""
    if "=" not in text:
        raise ConfigError(f"option {text!r} is not of the form key=value")
    key, value = text.split("=", 1)
    return key, yaml.safe_load(value) if value else value


INPUT_ERROR = 2
"""Exit status of a run stopped by bad input (a setting, a file, a device); 1 is kept for a
check that ran and found a problem (``robo dataset validate``, ``robo robot check``)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robo`` console script; returns the exit status.

    Bad input (the project's error types in ``utils/errors.py``, a config Hydra cannot
    compose, a missing or existing path) prints one line naming what is wrong and returns
    ``INPUT_ERROR``; any other exception is a bug and propagates with its traceback.
    """
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int | None] = args.run
    try:
        load_plugins()
        return run(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not is_input_error(err):
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)  # notes: e.g. a cleanup that failed after it
        return INPUT_ERROR


def is_input_error(err: BaseException) -> bool:
    """Whether ``err`` reports bad input rather than a bug (see ``main``)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from robo_policies.utils.errors import RoboError

    return isinstance(err, (RoboError, HydraException, OmegaConfBaseException, FileNotFoundError,
                            FileExistsError))


if __name__ == "__main__":
    sys.exit(main())
