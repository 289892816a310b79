"""Cameras: the newest frame without blocking, its age, dropped frames, stalls and the
backends (a replayed recording, OpenCV reading a video file as it would a device)."""

import re
import sys
import time
import types

import imageio.v3 as iio
import numpy as np
import pytest

from robo_policies.robots.cameras import CameraConfig, CameraError, make_camera
from robo_policies.robots.cameras.camera import StreamingCamera
from robo_policies.robots.clock import FakeClock
from robo_policies.utils.errors import UnknownNameError


def solid_frames(n, height=24, width=32):
    """Frame i is filled with value 10 * i in the red channel, 0 elsewhere."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    frames[..., 0] = (10 * np.arange(n, dtype=np.uint8))[:, None, None]
    return frames


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(solid_frames(5)):
        iio.imwrite(folder / f"{i:03d}.png", frame)
    return folder


def test_a_replayed_folder_delivers_every_frame_in_order_then_stalls(image_folder):
    clock = FakeClock()
    camera = make_camera("front", CameraConfig(type="replay", device=str(image_folder), fps=200), clock)
    with camera:
        last = camera.wait_for_frame(timeout_s=5.0, after=3)
        assert last.index == 4 and last.image.shape == (24, 32, 3) and last.image.dtype == np.uint8
        assert last.image[0, 0].tolist() == [40, 0, 0]  # the fifth file, exactly (PNG)
        assert camera.latest(max_age_s=0.5) is last
        clock.advance(0.75)  # no frame after the last one: the camera looks frozen
        with pytest.raises(CameraError, match=r"camera 'front' stalled: its newest frame is 0\.750 s old "
                                              r"\(limit 0\.5 s\)"):
            camera.latest(max_age_s=0.5)
        assert camera.latest().index == 4  # without a limit the caller decides
        assert camera.stats().frames == 5 and camera.stats().fps == 200


class ScriptedCamera(StreamingCamera):
    """Frames handed in by the test; nothing captured in the background."""

    def _open(self):
        return 50.0

    def _grab(self):
        return None

    def _close(self):
        pass


def test_gaps_between_captures_count_the_frames_the_camera_did_not_deliver():
    clock = FakeClock()
    camera = ScriptedCamera("wrist", clock)
    camera.fps = 50.0
    for t in (0.0, 0.02, 0.04, 0.10, 0.12, 0.15):  # 0.04 -> 0.10 misses 2; 0.12 -> 0.15 is 1.5 periods
        clock.advance(t - clock.now())
        camera._store(np.zeros((2, 2, 3), np.uint8))
    assert camera.stats().frames == 6 and camera.stats().dropped == 2
    clock.advance(0.01)
    frame = camera.latest()
    assert frame.index == 5 and clock.now() - frame.timestamp == pytest.approx(0.01)


class FailingCamera(ScriptedCamera):
    def _grab(self):
        raise OSError("[Errno 19] No such device")


def test_a_camera_that_fails_is_named_with_the_cause():
    with pytest.raises(CameraError, match=r"camera 'front' failed: \[Errno 19\] No such device"):
        FailingCamera("front").connect(first_frame_timeout_s=2.0)


def test_bad_camera_configs_name_what_is_wrong(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown camera type 'usb'; known types: opencv, realsense, replay"):
        make_camera("front", CameraConfig(type="usb"))
    missing = tmp_path / "nothing.mp4"
    with pytest.raises(CameraError, match=f"camera 'front': {missing} does not exist"):
        make_camera("front", CameraConfig(type="replay", device=str(missing))).connect()
    with pytest.raises(CameraError, match="a folder of images has no frame rate; set fps"):
        make_camera("front", CameraConfig(type="replay", device=str(tmp_path))).connect()


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "red.mp4"
    frames = np.zeros((30, 48, 64, 3), np.uint8)
    frames[..., 0] = 200  # red: a camera that hands out BGR would show it in the last channel
    iio.imwrite(path, frames, fps=30)
    return path


def test_opencv_frames_come_back_rgb_rotated_as_mounted(video):
    pytest.importorskip("cv2")
    config = CameraConfig(type="opencv", device=str(video), rotation=90, warmup_frames=2)
    with make_camera("front", config) as camera:
        frame = camera.latest()
        assert camera.fps == pytest.approx(30)
    assert frame.image.shape == (64, 48, 3)  # rotated a quarter turn
    red, green, blue = frame.image[20:40, 10:30].reshape(-1, 3).mean(axis=0)
    assert red > 150 and green < 40 and blue < 40


def test_opencv_refuses_a_mode_the_camera_does_not_run(video):
    pytest.importorskip("cv2")
    config = CameraConfig(type="opencv", device=str(video), width=320)
    with pytest.raises(CameraError, match=r"camera 'front' \(.*red.mp4\) does not take width 320 \(it runs 64\)"):
        make_camera("front", config).connect()
    with pytest.raises(CameraError, match="OpenCV cannot open '/dev/video-none'"):
        make_camera("front", CameraConfig(device="/dev/video-none")).connect()
    with pytest.raises(CameraError, match=r"rotation 45 is not one of \(0, 90, 180, 270\)"):
        make_camera("front", CameraConfig(rotation=45))


@pytest.fixture
def robot_with_cameras(tmp_path, image_folder):
    """so101_arm's config with two replayed cameras (the wrist camera loops, as a device would run on)."""
    from robo_policies.robots.config import find_hardware_file

    text = find_hardware_file("so101_arm/robot.yaml").read_text()
    text += ("\ncameras:\n"
             f"  front: {{type: replay, device: '{image_folder}', fps: 100, loop: true}}\n"
             f"  wrist: {{type: replay, device: '{image_folder}', fps: 50, loop: true}}\n")
    path = tmp_path / "robot.yaml"
    path.write_text(text)
    return path


def test_robo_camera_snap_writes_the_frame_a_camera_delivered(tmp_path, robo):
    folder = tmp_path / "one"
    folder.mkdir()
    frame = solid_frames(4)[3]
    iio.imwrite(folder / "000.png", frame)
    run = robo("camera", "snap", "type=replay", f"device={folder}", "fps=10", f"out={tmp_path / 'snap.png'}")
    assert run.code == 0 and f"wrote {tmp_path / 'snap.png'} from camera 'camera'" in run.out
    assert np.array_equal(iio.imread(tmp_path / "snap.png"), frame)


def test_robo_camera_check_reports_every_camera_of_a_robot(tmp_path, robo, robot_with_cameras):
    import json

    out = tmp_path / "check.json"
    run = robo("camera", "check", f"robot={robot_with_cameras}", "seconds=0.3", "read_hz=100", f"out={out}")
    assert run.code == 0, run.err
    reports = {report["name"]: report for report in json.loads(out.read_text())}
    assert sorted(reports) == ["front", "wrist"]
    assert reports["front"]["fps_configured"] == 100 and reports["wrist"]["fps_configured"] == 50
    assert all(r["frames"] > 2 and r["shape"] == [24, 32, 3] and r["frame_age_ms_p50"] >= 0 for r in reports.values())


def test_robo_camera_names_a_robot_without_the_camera(robo, robot_with_cameras):
    run = robo("camera", "snap", f"robot={robot_with_cameras}")
    assert run.code != 0 and "camera=<name> is required: robot" in run.err and "['front', 'wrist']" in run.err
    run = robo("camera", "check", f"robot={robot_with_cameras}", "camera=top")
    assert run.code != 0 and "no camera 'top'; its cameras: ['front', 'wrist']" in run.err
    run = robo("camera", "check", "robot=so101_arm")
    assert run.code != 0 and "robot 'so101_arm' declares no cameras" in run.err


def test_a_frame_is_centre_cropped_to_the_policys_aspect_then_shrunk():
    pytest.importorskip("cv2")
    from robo_policies.robots.cameras.fit import fit_image

    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :8] = (255, 0, 0)  # the side strips the square crop removes
    frame[:, -8:] = (255, 0, 0)
    frame[:, 8:-8] = (0, 200, 0)
    fitted = fit_image(frame, (84, 84))
    assert fitted.shape == (84, 84, 3) and fitted.dtype == np.uint8
    assert fitted[..., 0].max() == 0 and fitted[..., 1].min() == 200  # nothing of the strips, nothing stretched
    assert fit_image(frame, (48, 64)) is frame


# -- RealSense (pyrealsense2 stood in for: no device and no libusb here) --------------------------

class FakeRealSense:
    """The parts of pyrealsense2 the backend uses: one D405 (serial 1234, depth unit 0.1 mm)
    whose colour frame i is filled with i and whose depth reads 1000 + i raw units."""

    stream = types.SimpleNamespace(color="color", depth="depth")
    format = types.SimpleNamespace(rgb8="rgb8", z16="z16")
    camera_info = types.SimpleNamespace(serial_number="serial", name="name")
    started: list = []

    class config:
        def __init__(self):
            self.serial, self.streams = "", []

        def enable_device(self, serial):
            self.serial = serial

        def enable_stream(self, *args):
            self.streams.append(args)

    class pipeline:
        def start(self, config):
            if config.serial not in ("", "1234"):
                raise RuntimeError("No device connected")
            FakeRealSense.started.append(config.streams)
            self.index = 0
            sensor = types.SimpleNamespace(get_depth_scale=lambda: 0.0001)
            video = types.SimpleNamespace(fps=lambda: 30)
            return types.SimpleNamespace(get_device=lambda: types.SimpleNamespace(first_depth_sensor=lambda: sensor),
                                         get_stream=lambda stream: types.SimpleNamespace(
                                             as_video_stream_profile=lambda: video))

        def wait_for_frames(self, timeout_ms):
            time.sleep(0.005)
            self.index += 1
            colour = np.full((6, 8, 3), self.index % 256, np.uint8)
            depth = np.full((6, 8), 1000 + self.index, np.uint16)
            return types.SimpleNamespace(get_color_frame=lambda: types.SimpleNamespace(get_data=lambda: colour),
                                         get_depth_frame=lambda: types.SimpleNamespace(get_data=lambda: depth))

        def stop(self):
            pass

    class align:
        def __init__(self, stream):
            assert stream == "color"

        def process(self, frames):
            return frames

    @staticmethod
    def context():
        device = types.SimpleNamespace(get_info=lambda what: {"serial": "1234", "name": "Intel RealSense D405"}[what])
        return types.SimpleNamespace(query_devices=lambda: [device])


@pytest.fixture
def fake_realsense(monkeypatch):
    FakeRealSense.started = []
    monkeypatch.setitem(sys.modules, "pyrealsense2", FakeRealSense)
    return FakeRealSense


def test_a_realsense_delivers_rgb_and_depth_in_millimetres_aligned_to_it(fake_realsense, tmp_path):
    config = CameraConfig(type="realsense", device="1234", width=8, height=6, fps=30, depth=True)
    with make_camera("wrist", config) as camera:
        frame = camera.wait_for_frame(timeout_s=2.0, after=2)
        assert camera.fps == 30
    assert frame.image.shape == (6, 8, 3) and frame.image.dtype == np.uint8
    raw = 1000 + int(frame.image[0, 0, 0])  # the same capture's depth (raw units of 0.1 mm)
    assert frame.depth.dtype == np.uint16 and frame.depth.shape == (6, 8) and frame.depth[0, 0] == round(raw / 10)
    assert fake_realsense.started == [[("color", 8, 6, "rgb8", 30), ("depth", 8, 6, "z16", 30)]]
    with pytest.raises(CameraError, match=r"camera 'front': RealSense \(serial 999\) does not start 0x0 at 0 fps: "
                                          r"No device connected \(`robo camera list` shows the serials\)"):
        make_camera("front", CameraConfig(type="realsense", device="999")).connect()


def test_robo_camera_snap_saves_a_realsense_depth_beside_its_colour(fake_realsense, tmp_path, robo):
    run = robo("camera", "snap", "type=realsense", "depth=true", f"out={tmp_path / 'wrist.png'}")
    assert run.code == 0, run.err
    assert f"wrote {tmp_path / 'wrist.png'}, {tmp_path / 'wrist_depth.png'}" in run.out
    depth = iio.imread(tmp_path / "wrist_depth.png")
    assert depth.dtype == np.uint16 and depth.shape == (6, 8) and 100 <= depth[0, 0] <= 126


def test_without_pyrealsense2_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(CameraError, match=r'RealSense cameras need pyrealsense2: pip install "robo-policies\[realsense\]"'):
        make_camera("wrist", CameraConfig(type="realsense")).connect()


# -- robo camera list ---------------------------------------------------------------------------

class FakeCapture:
    """An OpenCV capture whose driver takes 640x480 and 1280x720 at 30 fps and otherwise
    keeps its present mode (what V4L2 drivers do with a mode they do not run)."""

    TAKES = {(640, 480, 30), (1280, 720, 30)}

    def __init__(self, source):
        self.mode = {3: 640.0, 4: 480.0, 5: 30.0}
        self.pending = dict(self.mode)
        self.opened = source == 0

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.pending[prop] = float(value)
        if (self.pending[3], self.pending[4], self.pending[5]) in self.TAKES:
            self.mode = dict(self.pending)
        return True

    def get(self, prop):
        return self.mode[prop]

    def release(self):
        pass


def test_robo_camera_list_shows_the_modes_a_device_takes(monkeypatch, robo):
    import robo_policies.robots.cameras.opencv as opencv
    import robo_policies.robots.cameras.tools as tools

    fake_cv2 = types.SimpleNamespace(VideoCapture=FakeCapture, CAP_PROP_FRAME_WIDTH=3, CAP_PROP_FRAME_HEIGHT=4,
                                     CAP_PROP_FPS=5)
    monkeypatch.setattr(opencv, "import_cv2", lambda: fake_cv2)
    monkeypatch.setattr(tools, "import_cv2", lambda: fake_cv2)
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    found = tools.find_cameras(["0", "/dev/video1"], probe_modes=True)
    assert [(d.device, d.opened) for d in found] == [("0", True), ("/dev/video1", False)]
    assert found[0].modes == ((640, 480, 30.0), (1280, 720, 30.0))
    run = robo("camera", "list", "0", "--modes")
    assert run.code == 0, run.err
    assert re.search(r"^0\s+yes\s+640x480\s+30\s+640x480@30 1280x720@30$", run.out, re.M), run.out
    assert "RealSense: not searched (RealSense cameras need pyrealsense2" in run.out
