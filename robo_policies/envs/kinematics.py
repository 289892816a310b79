"""Damped-least-squares inverse kinematics on a MuJoCo model.

Generic on purpose: it knows a model, one site and the names of the (hinge or slide) joints
it may move, nothing about a particular robot. The simulated experts use it to turn
Cartesian waypoints into joint targets, and a real-arm driver can use the same model to do
the same for hardware. All work happens on a private ``MjData``, so solving never disturbs
a running simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np


_ONE_DOF_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


@dataclass(frozen=True)
class IKResult:
    """A solution: joint values (in the order given to the solver) and the residual errors."""

    qpos: np.ndarray
    pos_err: float
    """Distance (m) between the site and the target position."""
    rot_err: float
    """Angle (rad) between the site frame and the target orientation (0 if none was asked)."""
    converged: bool


class DLSInverseKinematics:
    """Solves for joint values that put a site at a position (and optionally an orientation).

    Damped least squares (Levenberg-Marquardt): each iteration takes the step
    ``dq = J^T (J J^T + lambda^2 I)^-1 e`` on the site Jacobian from ``mj_jacSite``, then clips
    to the joint limits. The damping keeps steps bounded near singularities, which is
    why this is preferred to a plain pseudo-inverse. An orientation target a robot cannot
    reach (e.g. a full 6-D pose for a 5-joint arm) is met in the least-squares sense.

    Args:
        model: the MuJoCo model.
        site: name of the site to place (e.g. a tool centre point).
        joints: names of the 1-DoF joints the solver may move.
        qpos_rest: full ``qpos`` for the joints the solver does not move (default: the
            model's ``qpos0``).
        rot_weight: metres of position error worth one radian of orientation error.
        damping: the ``lambda`` above, in the units of the weighted error.
        max_step: largest change of any joint per iteration (rad or m).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        site: str,
        joints: Sequence[str],
        *,
        rot_weight: float = 0.1,
        damping: float = 1e-3,
        max_step: float = 0.2,
        qpos_rest: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        if qpos_rest is not None:
            self.data.qpos[:] = qpos_rest
        self.site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        if self.site_id < 0:
            raise ValueError(f"model has no site named '{site}'")
        ids = []
        for name in joints:
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
            if jid < 0:
                raise ValueError(f"model has no joint named '{name}'")
            if int(model.jnt_type[jid]) not in _ONE_DOF_JOINTS:
                raise ValueError(f"joint '{name}' is not a hinge or slide joint")
            ids.append(jid)
        self.qpos_adr = model.jnt_qposadr[ids]
        self.dof_adr = model.jnt_dofadr[ids]
        limited = model.jnt_limited[ids].astype(bool)
        ranges = model.jnt_range[ids]
        self.lower = np.where(limited, ranges[:, 0], -np.inf)
        self.upper = np.where(limited, ranges[:, 1], np.inf)
        self.rot_weight = rot_weight
        self.damping = damping
        self.max_step = max_step
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position (3,) and rotation matrix (3, 3) for joint values ``q``."""
        self._set(q)
        pos = self.data.site_xpos[self.site_id].copy()
        return pos, self.data.site_xmat[self.site_id].reshape(3, 3).copy()

    def solve(
        self,
        target_pos: np.ndarray,
        target_quat: np.ndarray | None = None,
        q_init: np.ndarray | None = None,
        *,
        max_iters: int = 100,
        pos_tol: float = 1e-4,
        rot_tol: float = 1e-3,
    ) -> IKResult:
        """Iterate from ``q_init`` (default: the middle of the joint ranges) towards the target.

        ``target_quat`` is a (w, x, y, z) world orientation of the site frame; None solves
        for position only. Warm-starting from the previous solution keeps consecutive
        solutions close, which is what makes interpolated trajectories smooth.
        """
        target_pos = np.asarray(target_pos, dtype=float)
        if q_init is None:
            mid = 0.5 * (self.lower + self.upper)
            q = np.where(np.isfinite(mid), mid, 0.0)
        else:
            q = np.clip(np.asarray(q_init, dtype=float), self.lower, self.upper)
        quat = None if target_quat is None else np.asarray(target_quat, dtype=float)
        n_err = 3 if quat is None else 6
        eye = np.eye(n_err) * self.damping**2
        for _ in range(max_iters):
            err, pos_err, rot_err = self._error(q, target_pos, quat)
            if pos_err < pos_tol and rot_err < rot_tol:
                return IKResult(q.copy(), pos_err, rot_err, True)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site_id)
            jac = self._jacp[:, self.dof_adr]
            if quat is not None:
                jac = np.vstack([jac, self._jacr[:, self.dof_adr] / self.rot_weight])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + eye, err)
            dq *= min(1.0, self.max_step / max(np.abs(dq).max(), 1e-12))
            q = np.clip(q + dq, self.lower, self.upper)
        _, pos_err, rot_err = self._error(q, target_pos, quat)
        return IKResult(q.copy(), pos_err, rot_err, pos_err < pos_tol and rot_err < rot_tol)

    def _error(
        self, q: np.ndarray, target_pos: np.ndarray, target_quat: np.ndarray | None
    ) -> tuple[np.ndarray, float, float]:
        """Weighted error vector at ``q`` plus its position (m) and rotation (rad) norms."""
        self._set(q)
        pos = target_pos - self.data.site_xpos[self.site_id]
        if target_quat is None:
            return pos, float(np.linalg.norm(pos)), 0.0
        # World-frame rotation taking the site frame onto the target: q_target * q_site^-1.
        site_quat, site_inv, quat_err, rot = np.empty(4), np.empty(4), np.empty(4), np.empty(3)
        mujoco.mju_mat2Quat(site_quat, self.data.site_xmat[self.site_id])
        mujoco.mju_negQuat(site_inv, site_quat)
        mujoco.mju_mulQuat(quat_err, target_quat, site_inv)
        if quat_err[0] < 0:  # q and -q are the same rotation: take the short way round
            quat_err *= -1
        mujoco.mju_quat2Vel(rot, quat_err, 1.0)
        err = np.concatenate([pos, rot / self.rot_weight])
        return err, float(np.linalg.norm(pos)), float(np.linalg.norm(rot))

    def _set(self, q: np.ndarray) -> None:
        self.data.qpos[self.qpos_adr] = q
        # mj_jacSite needs the kinematics and the com-based quantities (cdof).
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
