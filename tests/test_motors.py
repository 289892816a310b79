"""The motor-bus layer against fake Dynamixel and Feetech servos served on a pty.

The real drivers and vendor SDKs run down to the serial port; ``fake_servos.py`` answers
byte for byte, so these tests check register contents, wire encodings, retries and error
messages, not mocks.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from fake_servos import PING, SYNC_READ, SYNC_WRITE, FakeDynamixelBus, FakeFeetechBus, crc16_dynamixel

from robo_policies.robots.clock import FakeClock
from robo_policies.robots.motors import (
    CalibrationError,
    Motor,
    MotorBusError,
    MotorCalibration,
    MotorCommunicationError,
    MotorHardwareError,
    MotorHardwareWarning,
    Register,
    load_calibration,
    motor_bus_class,
    save_calibration,
)
from robo_policies.utils.errors import ConfigError


VENDORS = {
    # vendor: (SDK module, fake, model, model number)
    "dynamixel": ("dynamixel_sdk", FakeDynamixelBus, "xl430-w250", 1060),
    "feetech": ("scservo_sdk", FakeFeetechBus, "sts3215", 777),
}
CALIBRATION = {
    "shoulder": MotorCalibration(homing_offset=2048, range_min=1024, range_max=3072, drive_direction=1),
    "elbow": MotorCalibration(homing_offset=1000, range_min=500, range_max=3500, drive_direction=-1),
    "wheel": MotorCalibration(homing_offset=0, range_min=0, range_max=4095, drive_direction=-1),
}
TICK = 2 * math.pi / 4096


def motors(model: str) -> list[Motor]:
    return [Motor("shoulder", 1, model), Motor("elbow", 2, model), Motor("wheel", 3, model, "velocity")]


@pytest.fixture(params=list(VENDORS))
def vendor(request) -> str:
    pytest.importorskip(VENDORS[request.param][0])
    return request.param


@pytest.fixture
def fake(vendor):
    _, fake_class, _, model_number = VENDORS[vendor]
    with fake_class({1: model_number, 2: model_number, 3: model_number}) as served:
        yield served


def make_bus(vendor: str, fake, motor_list=None, **kwargs):
    model = VENDORS[vendor][2]
    motor_list = motors(model) if motor_list is None else motor_list
    calibration = {m.name: CALIBRATION[m.name] for m in motor_list}
    return motor_bus_class(vendor)(fake.port, motor_list, calibration, **kwargs)


@pytest.fixture
def bus(vendor, fake):
    connected = make_bus(vendor, fake)
    connected.connect()
    yield connected
    connected.disconnect()


# -- positions, goals, torque, modes ------------------------------------------------------------


def test_read_positions_applies_calibration_and_round_trips(bus, fake):
    fake.set_value(1, "present_position", 2560)
    fake.set_value(2, "present_position", 744)
    q = bus.read_positions(["shoulder", "elbow"])
    np.testing.assert_allclose(q, [math.pi / 4, math.pi / 8])  # (2560-2048) and -(744-1000) ticks
    for shoulder_ticks, elbow_ticks in [(1024, 3500), (2047, 501), (3071, 2999)]:
        fake.set_value(1, "present_position", shoulder_ticks)
        fake.set_value(2, "present_position", elbow_ticks)
        with fake.handled(SYNC_WRITE):  # no reply to wait for
            bus.write_goal_positions(bus.read_positions(["shoulder", "elbow"]), ["shoulder", "elbow"])
        assert abs(fake.value(1, "goal_position") - shoulder_ticks) <= 1
        assert abs(fake.value(2, "goal_position") - elbow_ticks) <= 1


def test_readings_outside_the_calibrated_range_are_clamped(bus, fake):
    fake.set_value(1, "present_position", 4000)  # beyond range_max 3072
    assert bus.read_positions(["shoulder"])[0] == pytest.approx((3072 - 2048) * TICK)


def test_goal_positions_are_clamped_and_written_byte_exactly(vendor, bus, fake):
    with fake.handled(SYNC_WRITE):
        sent = bus.write_goal_positions([math.pi / 2, 10.0], ["shoulder", "elbow"])
    # shoulder: 2048 + 1024 ticks; elbow: 10 rad is far below its range_min of 500 ticks.
    np.testing.assert_allclose(sent, [math.pi / 2, (1000 - 500) * TICK])
    address, size, _ = fake.registers["goal_position"]
    expected = {"dynamixel": (b"\x00\x0c\x00\x00", b"\xf4\x01\x00\x00"), "feetech": (b"\x00\x0c", b"\xf4\x01")}
    assert (fake.bytes_at(1, address, size), fake.bytes_at(2, address, size)) == expected[vendor]


def test_torque_enable_disable_and_torque_disabled_context(bus, fake):
    bus.enable_torque()
    assert [fake.value(i, "torque_enable") for i in (1, 2, 3)] == [1, 1, 1]
    bus.disable_torque(["elbow"])
    assert [fake.value(i, "torque_enable") for i in (1, 2, 3)] == [1, 0, 1]
    bus.enable_torque()
    with pytest.raises(RuntimeError, match="inside"):
        with bus.torque_disabled(["shoulder", "elbow"]):
            assert [fake.value(i, "torque_enable") for i in (1, 2, 3)] == [0, 0, 1]
            raise RuntimeError("inside the block")
    assert [fake.value(i, "torque_enable") for i in (1, 2, 3)] == [1, 1, 1]


def test_disconnect_turns_torque_off(vendor, fake):
    bus = make_bus(vendor, fake)
    bus.connect()
    bus.enable_torque()
    bus.disconnect()
    assert not bus.is_connected
    assert [fake.value(i, "torque_enable") for i in (1, 2, 3)] == [0, 0, 0]


def test_operating_mode_switch_is_safe(vendor, bus, fake):
    mode_values = {"dynamixel": {"position": 3, "velocity": 1}, "feetech": {"position": 0, "velocity": 1}}[vendor]
    assert bus.operating_modes == {"shoulder": "position", "elbow": "position", "wheel": "position"}
    with pytest.raises(MotorBusError, match="not in velocity mode"):
        bus.write_goal_velocities([1.0], ["wheel"])
    bus.enable_torque(["wheel"])
    bus.apply_operating_modes()
    assert fake.value(3, "operating_mode") == mode_values["velocity"]
    assert fake.value(3, "goal_velocity") == 0
    assert fake.value(3, "torque_enable") == 1  # back on, as it was
    assert bus.operating_modes["wheel"] == "velocity"
    with pytest.raises(MotorBusError, match="not in position mode"):
        bus.write_goal_positions([0.0], ["wheel"])

    fake.set_value(3, "goal_position", 100)  # a stale goal far from where the wheel is
    bus.set_operating_mode("wheel", "position")
    assert fake.value(3, "operating_mode") == mode_values["position"]
    assert fake.value(3, "goal_position") == fake.value(3, "present_position")


def test_dynamixel_rejects_an_eeprom_write_with_torque_on(vendor, bus, fake):
    if vendor != "dynamixel":
        pytest.skip("only Dynamixel servos guard their EEPROM with torque")
    bus.enable_torque(["wheel"])
    with pytest.raises(MotorBusError, match=r"'wheel' \(id 3\).*rejected the write of 'operating_mode'.*access"):
        bus.write("operating_mode", 1, ["wheel"])
    assert fake.value(3, "operating_mode") == 3


def test_goals_check_their_input(bus):
    with pytest.raises(ValueError, match="not finite"):
        bus.write_goal_positions([0.0, float("nan")], ["shoulder", "elbow"])
    with pytest.raises(ValueError, match="3 values for 2 motors"):
        bus.write_goal_positions([0.0, 0.0, 0.0], ["shoulder", "elbow"])
    with pytest.raises(ValueError, match="unknown motor"):
        bus.read_positions(["knee"])
    with pytest.raises(ValueError, match="whole numbers"):
        bus.write("goal_position", 1.5, ["shoulder"])


def test_motion_follows_the_fake_clock(vendor):
    clock = FakeClock()
    _, fake_class, _, model_number = VENDORS[vendor]
    with fake_class(dict.fromkeys((1, 2, 3), model_number), clock=clock.now) as fake:
        bus = make_bus(vendor, fake)
        with bus:
            bus.apply_operating_modes()
            bus.enable_torque()
            bus.write_goal_positions([math.pi / 8], ["shoulder"])
            bus.write_goal_velocities([2.0], ["wheel"])
            start = bus.read_positions()
            assert start[0] == pytest.approx(0.0, abs=TICK)  # no time has passed: nothing moved
            clock.advance(0.05)  # 4096 ticks/s for 0.05 s: 204.8 of the 256 ticks to pi/8
            assert bus.read_positions(["shoulder"])[0] == pytest.approx(204 * TICK, abs=TICK)
            clock.advance(0.2)
            moved = bus.read_positions() - start
            wheel_speed = bus.read_velocities(["wheel"])[0]
    assert moved[0] == pytest.approx(math.pi / 8, abs=TICK)  # reached the goal and stopped there
    assert wheel_speed == pytest.approx(2.0, abs=0.025)
    assert moved[2] == pytest.approx(wheel_speed * 0.25, abs=2 * TICK)


# -- velocities and encodings ----------------------------------------------------------------------


def test_velocity_signs_on_the_wire(vendor, bus, fake):
    bus.apply_operating_modes()
    # The wheel is mounted mirrored (drive_direction -1): +1 rad/s is a negative register value.
    with fake.handled(SYNC_WRITE):
        sent = bus.write_goal_velocities([1.0], ["wheel"])
    address, size, _ = fake.registers["goal_velocity"]
    if vendor == "dynamixel":  # round(1 / 0.0239809) = 42 units, two's complement
        assert fake.bytes_at(3, address, size) == b"\xd6\xff\xff\xff"
        assert sent[0] == pytest.approx(42 * 0.229 * 2 * math.pi / 60)
    else:  # round(1 / 0.00153398) = 652 = 0x028C units, sign in bit 15
        assert fake.bytes_at(3, address, size) == b"\x8c\x82"
        assert sent[0] == pytest.approx(652 * TICK)
    fake.set_value(3, "present_velocity", -100)
    unit = 0.229 * 2 * math.pi / 60 if vendor == "dynamixel" else TICK
    assert bus.read_velocities(["wheel"])[0] == pytest.approx(100 * unit)


def test_register_encodings():
    twos = Register(0, 4, "twos_complement")
    sign_magnitude = Register(0, 2, "sign_magnitude")
    assert twos.encode(-42) == b"\xd6\xff\xff\xff" and twos.decode(b"\xd6\xff\xff\xff") == -42
    assert sign_magnitude.encode(-652) == b"\x8c\x82" and sign_magnitude.decode(b"\x8c\x82") == -652
    assert sign_magnitude.encode(652) == b"\x8c\x02"
    assert Register(0, 2, "sign_magnitude", sign_bit=11).encode(-5) == b"\x05\x08"
    with pytest.raises(ValueError, match="does not fit"):
        sign_magnitude.encode(40000)
    with pytest.raises(ValueError, match="does not fit"):
        Register(0, 1).encode(-1)


def test_unit_conversion_numbers():
    calibration = MotorCalibration.full_turn(4096)
    assert calibration.ticks_to_radians(2048, 4096) == pytest.approx(math.pi)
    assert calibration.radians_to_ticks(math.pi / 2, 4096) == 1024
    mirrored = MotorCalibration(homing_offset=2048, range_min=0, range_max=4095, drive_direction=-1)
    assert mirrored.ticks_to_radians(1024, 4096) == pytest.approx(math.pi / 2)
    assert mirrored.radians_to_ticks(-math.pi / 2, 4096) == 3072


def test_vendor_velocity_units():
    pytest.importorskip("dynamixel_sdk")
    pytest.importorskip("scservo_sdk")
    from robo_policies.robots.motors.dynamixel import X_SERIES_MODELS
    from robo_policies.robots.motors.feetech import STS_MODELS

    dynamixel_unit = X_SERIES_MODELS["xl430-w250"].velocity_unit
    assert dynamixel_unit == pytest.approx(0.0239809, rel=1e-5)  # 0.229 rpm
    assert round(2 * math.pi / dynamixel_unit) == 262  # one turn per second
    feetech_unit = STS_MODELS["sts3215"].velocity_unit
    assert feetech_unit == pytest.approx(0.00153398, rel=1e-5)  # one step per second
    assert 50 * feetech_unit * 60 / (2 * math.pi) == pytest.approx(0.732, abs=1e-3)  # Feetech: 50 steps/s = 0.732 rpm


# -- retries, failures, hardware errors ------------------------------------------------------------


def test_recovers_from_a_dropped_and_a_corrupt_status_packet(bus, fake):
    fake.set_value(1, "present_position", 2560)
    sync_reads = fake.count(SYNC_READ)
    fake.drop_next_status(1)
    assert bus.read_positions(["shoulder", "elbow"])[0] == pytest.approx(math.pi / 4)
    assert bus.retry_count == 1
    fake.corrupt_next_status(1)
    assert bus.read_positions(["shoulder", "elbow"])[0] == pytest.approx(math.pi / 4)
    assert bus.retry_count == 2
    assert fake.count(SYNC_READ) - sync_reads == 4  # two attempts per read
    fake.drop_next_status(1)
    bus.enable_torque(["elbow"])  # a confirmed write retries too
    assert bus.retry_count == 3 and fake.value(2, "torque_enable") == 1


def test_too_many_failures_raise_a_clear_error(vendor, bus, fake):
    fake.drop_next_status(100)
    with pytest.raises(MotorCommunicationError) as raised:
        bus.read_positions(["elbow"])
    message = str(raised.value)
    for part in ("sync read", "'present_position'", "'elbow' (id 2)", fake.port, "4 attempts", "no status packet"):
        assert part in message
    assert raised.value.port == fake.port and raised.value.motor_ids == [2]
    assert raised.value.register == "present_position"
    fake.drop_next_status(0)
    fake.corrupt_next_status(100)
    with pytest.raises(MotorCommunicationError, match=r"of 'torque_enable' to motor 'shoulder' \(id 1\).*Incorrect"):
        bus.enable_torque(["shoulder"])
    fake.corrupt_next_status(0)
    assert bus.read_positions().shape == (3,)  # the bus still works


def test_an_unplugged_adapter_is_a_bus_error_naming_the_port(bus, fake, monkeypatch):
    # pyserial's termios calls fail with termios.error (not an OSError) once the tty is gone;
    # it must end as the bus's own error, so the robot's fault handling runs.
    import termios

    def gone():
        raise termios.error(5, "Input/output error")

    monkeypatch.setattr(bus._port.ser, "reset_input_buffer", gone)
    with pytest.raises(MotorBusError, match="is the adapter still plugged in") as raised:
        bus.read_positions()
    assert raised.value.port == fake.port and "Input/output error" in str(raised.value)


ARM_IDS = list(range(1, 7))


@pytest.fixture
def six_motors(vendor):
    """A 6-motor arm's bus (uncalibrated) on fake servos whose present positions are 100 * id."""
    _, fake_class, model, model_number = VENDORS[vendor]
    with fake_class(dict.fromkeys(ARM_IDS, model_number)) as fake:
        for motor_id in ARM_IDS:
            fake.set_value(motor_id, "present_position", 100 * motor_id)
        bus = motor_bus_class(vendor)(fake.port, [Motor(f"m{i}", i, model) for i in ARM_IDS])
        with bus:
            yield bus, fake


def sync_read_ids(fake) -> list[list[int]]:
    """The motors each sync read asked, in order."""
    return [list(instruction.params[2 * fake.address_size:]) for instruction in fake.instructions
            if instruction.code == SYNC_READ]


def test_a_sync_read_asks_again_only_the_motors_whose_reply_was_lost(six_motors):
    bus, fake = six_motors
    asked_before = len(sync_read_ids(fake))
    fake.drop_every(4)  # status packets 4, 8, 12, ... from here on
    for _ in range(2):
        assert bus.read("present_position").tolist() == [100 * i for i in ARM_IDS]
    # read 1: packet 4 (m4) lost, m4 asked again (packet 7); read 2: packets 8 (m1) and 12 (m5)
    # lost, m1 and m5 asked again together (14, 15)
    assert sync_read_ids(fake)[asked_before:] == [ARM_IDS, [4], ARM_IDS, [1, 5]]
    assert bus.retry_count == 2 and fake.dropped == 3


def test_a_motor_that_never_answers_is_named_alone(six_motors):
    bus, fake = six_motors
    asked_before = len(sync_read_ids(fake))
    table = fake.tables.pop(4)  # m4 loses power
    with pytest.raises(MotorCommunicationError, match=r"from motor 'm4' \(id 4\) .* 4 attempts: .*no status packet"
                       ) as raised:
        bus.read("present_position")
    fake.tables[4] = table  # and gets it back, so the bus can turn its torque off
    assert raised.value.motor_ids == [4]
    assert sync_read_ids(fake)[asked_before:] == [ARM_IDS, [4], [4], [4]] and bus.retry_count == 3


def test_hardware_errors_are_decoded(vendor, fake):
    faults = 0x20 | 0x04 | 0x01  # overload, overheating, input voltage: the same bits on both vendors
    strict = make_bus(vendor, fake, hardware_errors="raise")
    strict.connect()
    fake.set_hardware_error(2, faults)
    with pytest.raises(MotorHardwareError, match=r"'elbow' \(id 2\): input voltage, overheating, overload") as raised:
        strict.read_positions()
    assert raised.value.faults == {"elbow": ["input voltage", "overheating", "overload"]}
    strict.disconnect(disable_torque=False)
    with pytest.raises(MotorHardwareError, match="'elbow'"):
        strict.connect()  # reading the operating modes reports the fault too
    assert not strict.is_connected

    lenient = make_bus(vendor, fake)
    with pytest.warns(MotorHardwareWarning, match=r"'elbow' \(id 2\): input voltage, overheating, overload"):
        lenient.connect()
        q = lenient.read_positions()
    assert q.shape == (3,)
    fake.set_hardware_error(2, 0)
    lenient.disconnect()


# -- finding and setting up servos -------------------------------------------------------------------


def test_ping_scan_and_model_check(vendor, fake):
    _, _, model, model_number = VENDORS[vendor]
    setup = make_bus(vendor, fake, motor_list=[])
    setup.connect()
    assert setup.ping(2) == model_number
    assert setup.ping(9) is None
    assert setup.scan(range(6)) == [1, 2, 3]
    assert fake.count(PING) >= 8
    setup.disconnect()

    wrong_id = make_bus(vendor, fake, motor_list=[Motor("shoulder", 5, model)])
    with pytest.raises(MotorBusError, match=r"'shoulder' \(id 5\) does not answer on .* at 1000000 bit/s"):
        wrong_id.connect()
    assert not wrong_id.is_connected


def test_connect_names_a_model_mismatch(vendor):
    pytest.importorskip(VENDORS[vendor][0])
    _, fake_class, model, _ = VENDORS[vendor]
    with fake_class({1: 1020}) as fake:  # 1020: an XM430-W350
        bus = motor_bus_class(vendor)(fake.port, [Motor("shoulder", 1, model)])
        with pytest.raises(MotorBusError, match=f"reports model number 1020.*configured as {model}"):
            bus.connect()


def test_set_id(vendor, fake):
    setup = make_bus(vendor, fake, motor_list=[])
    setup.connect()
    setup.set_id(3, 7)
    assert setup.scan([3, 7]) == [7]
    assert fake.value(7, "id") == 7
    if vendor == "feetech":
        assert fake.value(7, "lock") == 1  # locked again after the EEPROM write
    with pytest.raises(MotorBusError, match="id 2 is already taken"):
        setup.set_id(7, 2)
    setup.disconnect()


def test_set_baudrate(vendor, fake):
    setup = make_bus(vendor, fake, motor_list=[])
    setup.connect()
    setup.set_baudrate(57_600, [1, 2])
    assert setup.baudrate == 57_600
    assert [fake.value(i, "baud_rate") for i in (1, 2)] == [{"dynamixel": 1, "feetech": 6}[vendor]] * 2
    assert setup.ping(1) is not None  # the port moved along (a pty ignores the rate)
    setup.disconnect()


def test_dynamixel_byte_stuffing():
    pytest.importorskip("dynamixel_sdk")
    with FakeDynamixelBus({1: 1060}) as fake:
        bus = motor_bus_class("dynamixel")(fake.port, [Motor("shoulder", 1, "xl430-w250")])
        bus.connect()
        bus.write("goal_position", 0x00FDFFFF)  # data FF FF FD 00, a header inside a packet
        assert fake.bytes_at(1, 116, 4) == b"\xff\xff\xfd\x00"
        fake.set_value(1, "present_position", 0x00FDFFFF)  # the fake stuffs an FD into its reply
        assert b"\xff\xff\xfd\xfd" in fake.status_packet(1, 0, b"\xff\xff\xfd\x00")
        assert bus.read("present_position").tolist() == [0x00FDFFFF]  # and the SDK removes it
        assert fake.rejected_packets == 0
        bus.disconnect()


def test_fake_dynamixel_crc_matches_the_protocol_example():
    # Protocol 2.0 manual, ping example: FF FF FD 00 01 03 00 01 -> CRC 19 4E.
    assert crc16_dynamixel(bytes.fromhex("fffffd0001030001")) == 0x4E19


# -- calibration files ---------------------------------------------------------------------------------


def test_calibration_json_round_trip(tmp_path):
    path = tmp_path / "calibration.json"
    save_calibration(path, CALIBRATION)
    assert load_calibration(path) == CALIBRATION
    assert json.loads(path.read_text())["elbow"] == {"homing_offset": 1000, "range_min": 500,
                                                     "range_max": 3500, "drive_direction": -1}
    save_calibration(path, {"shoulder": CALIBRATION["shoulder"]})  # replaced whole
    assert list(load_calibration(path)) == ["shoulder"]
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.json"]  # no temporary left


@pytest.mark.parametrize("content, expected", [
    ("{not json", r"not valid JSON \(line 1, column 2\)"),
    ("[1, 2]", "expected an object mapping motor names"),
    ('{"elbow": {"homing_offset": 1, "range_min": 0, "range_max": 9}}',
     r"motor 'elbow': missing key\(s\) \['drive_direction'\]"),
    ('{"elbow": {"homing_offset": 1, "range_min": 0, "range_max": 9, "drive_direction": 0}}',
     r"motor 'elbow': 'drive_direction' must be 1 or -1, got 0"),
    ('{"elbow": {"homing_offset": 1.5, "range_min": 0, "range_max": 9, "drive_direction": 1}}',
     r"motor 'elbow': 'homing_offset' must be an integer number of ticks, got 1.5"),
    ('{"elbow": {"homing_offset": 1, "range_min": 9, "range_max": 0, "drive_direction": 1}}',
     r"'range_min' \(9\) is above 'range_max' \(0\)"),
    ('{"elbow": {"homing_offset": 1, "range_min": 0, "range_max": 9, "drive_direction": 1, "offset": 2}}',
     r"unknown key\(s\) \['offset'\]"),
])
def test_malformed_calibration_files_are_named(tmp_path, content, expected):
    path = tmp_path / "calibration.json"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=expected) as raised:
        load_calibration(path)
    assert str(path) in str(raised.value) and isinstance(raised.value, ConfigError)


def test_bus_checks_its_configuration(vendor, fake):
    model = VENDORS[vendor][2]
    bus_class = motor_bus_class(vendor)
    with pytest.raises(ConfigError, match=r"missing \['elbow'\]"):
        bus_class(fake.port, motors(model), {"shoulder": CALIBRATION["shoulder"], "wheel": CALIBRATION["wheel"]})
    with pytest.raises(ConfigError, match="id 1 is already used"):
        bus_class(fake.port, [Motor("a", 1, model), Motor("b", 1, model)])
    with pytest.raises(ConfigError, match="unknown model 'ax-12'"):
        bus_class(fake.port, [Motor("a", 1, "ax-12")])
    with pytest.raises(ConfigError, match="unknown motor vendor 'robotis'"):
        motor_bus_class("robotis")
    with pytest.raises(MotorBusError, match="not connected"):
        bus_class(fake.port, motors(model)).read_positions()


def test_importing_the_package_needs_no_sdk():
    code = ("import sys, robo_policies.robots.motors as m; "
            "assert not {'dynamixel_sdk', 'scservo_sdk', 'serial'} & set(sys.modules); print(m.MotorBus.__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MotorBus"


# -- what the SDKs raise, and the servos' communication watchdog ---------------------------------


def test_a_reply_the_feetech_sdk_cannot_parse_is_retried_then_named():
    # A status packet with a valid checksum but no data: scservo_sdk's ping indexes the two
    # bytes of the model number it does not hold (IndexError inside the SDK).
    pytest.importorskip("scservo_sdk")
    with FakeFeetechBus({1: 777}) as fake:
        bus = motor_bus_class("feetech")(fake.port, [Motor("shoulder", 1, "sts3215")], retries=2)
        fake.truncate_reads("model_number", count=1)
        bus.connect()  # the model check's first ping is garbled: retried
        assert (fake.truncated, bus.retry_count) == (1, 1)
        bus.disconnect()
        fake.truncate_reads("model_number", count=3)
        with pytest.raises(MotorBusError) as raised:
            bus.connect()
    assert str(raised.value).startswith(f"motor 'shoulder' (id 1) does not answer on {fake.port} at 1000000 bit/s "
                                        "(garbled status packet (IndexError in scservo_sdk: list index out of range))")
    assert isinstance(raised.value.__cause__, MotorCommunicationError) and not bus.is_connected


@pytest.mark.parametrize("vendor_name,watchdog_ms,units", [
    ("dynamixel", 150.0, 8), ("dynamixel", 2540.0, 127), ("feetech", 150.0, None)])
def test_the_comm_watchdog_setting_in_register_units(vendor_name, watchdog_ms, units):
    pytest.importorskip(VENDORS[vendor_name][0])
    bus = motor_bus_class(vendor_name)("/dev/null", motors(VENDORS[vendor_name][2]), comm_watchdog_ms=watchdog_ms)
    assert bus.comm_watchdog_units == units  # rounded up to 20 ms; Feetech servos have none
    assert bus.comm_watchdog_s == (None if units is None else pytest.approx(units * 0.02))


def test_a_comm_watchdog_beyond_the_register_is_refused():
    pytest.importorskip("dynamixel_sdk")
    with pytest.raises(ConfigError, match=r"comm_watchdog_ms must be in \(0, 2540\] on DynamixelMotorBus, got 2541"):
        motor_bus_class("dynamixel")("/dev/null", motors("xl430-w250"), comm_watchdog_ms=2541)
