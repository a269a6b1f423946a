"""The facility plant: CRAH fans, pumps, chiller compressor, heat rejection, UPS and transformer.

Facility power = IT + CRAH fans + pumps + chiller + cooling-tower fans + UPS/transformer losses +
fixed loads (lighting, controls). Unlike "cooling = IT / COP", the parts scale differently:

- CRAH fans: fan-law airflow, P = V dP / eta x (V / V_design)^3 on variable speed; constant-speed
  units draw their design power whatever the load (the usual fixed share).
- pumps: constant-speed chilled- and condenser-water pumps, a fixed W per kW of plant capacity.
- chiller: the DOE-2 electric chiller model (EnergyPlus Chiller:Electric:EIR): electric input =
  capacity / COP_ref x EIR(T_chw, T_cond) x EIR(part-load ratio); the compressor gets less
  efficient at low load and when the condenser side is hot.
- cooling tower: fan power per kW of heat rejected.
- UPS and transformer: losses a P_rated + b P + c P^2 / P_rated (no-load, proportional and
  square-law losses; Schneider Electric White Paper 113, "Electrical Efficiency Modeling for Data
  Centers").

Pure functions of floats / numpy arrays. Parameters come from the scenario (twin.spec.scenario
PlantSpec / ElectricalSpec) with sourced defaults; PUE at 10/50/100 % load is in docs/model.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.spec.scenario import ElectricalSpec, PlantSpec

# DOE-2.1E default electric reciprocating chiller (EnergyPlus dataset "DOE-2 Reciprocating/3.67COP";
# Modelica Buildings.Fluid.Chillers.Data.ElectricEIR.DOE_2_Reciprocating_3_67COP): reference COP 3.67
# at 6.67 C leaving chilled water and 29.4 C entering condenser water.
DOE2_RECIP_EIR_FT = (1.03076, -0.103536, 0.00710208, 0.0093186, 0.00031752, -0.00104328)
DOE2_RECIP_EIR_FPLR = (0.088065, 1.137742, -0.225806)
DOE2_RECIP_CHW_RANGE_C = (5.0, 10.0)    # curve validity (EnergyPlus clamps its inputs to it)
DOE2_RECIP_COND_RANGE_C = (24.0, 35.0)
DOE2_RECIP_PLR_MIN = 0.1                # below it the compressor cycles: power as at PLR_MIN


def _clamp(x: float, lo: float, hi: float) -> float:
    """np.clip of one float, without its array machinery (x unless strictly outside [lo, hi])."""
    return lo if x < lo else hi if x > hi else x


def crah_fan_power_w(airflow_m3_s: np.ndarray | float, design_airflow_m3_s: float, pressure_pa: float,
                     fan_efficiency: float, variable_speed: bool, min_speed_frac: float) -> np.ndarray:
    """CRAH/CRAC fan electrical power. Design point: P = V dP / eta (total pressure rise across
    coil, filter, casing and floor; eta fan + motor + drive). Constant speed: the design power at
    any load. Variable speed: fan laws, speed = V / V_design (at least `min_speed_frac`),
    P ~ speed^3 (hardware.md "Fans: affinity laws")."""
    design_w = design_airflow_m3_s * pressure_pa / fan_efficiency
    if not variable_speed:
        return np.full(np.shape(airflow_m3_s), design_w)
    speed = np.clip(np.asarray(airflow_m3_s, dtype=float) / design_airflow_m3_s, min_speed_frac, None)
    return design_w * speed ** 3


def pump_power_w(capacity_w: float, w_per_kw: float) -> float:
    """Constant-speed chilled- and condenser-water pumps: a fixed W per kW of plant capacity.
    ASHRAE 90.1 Appendix G baseline: chilled water 22 W/gpm at 2 gpm/ton (12.5 W/kW) + condenser
    water 19 W/gpm at 3 gpm/ton (16.2 W/kW) = 28.7 W per kW of cooling capacity."""
    return capacity_w * w_per_kw / 1e3


def chiller_eir_ft(chw_c: float, cond_c: float) -> float:
    """EIR modifier for temperature (DOE-2 biquadratic in leaving chilled-water and entering
    condenser temperatures, inputs clamped to the curve's range as EnergyPlus does)."""
    t_e = float(_clamp(chw_c, *DOE2_RECIP_CHW_RANGE_C))
    t_c = float(_clamp(cond_c, *DOE2_RECIP_COND_RANGE_C))
    a, b, c, d, e, f = DOE2_RECIP_EIR_FT
    return a + b * t_e + c * t_e ** 2 + d * t_c + e * t_c ** 2 + f * t_e * t_c


def chiller_eir_fplr(plr: np.ndarray | float) -> np.ndarray:
    """EIR modifier for part-load ratio (DOE-2 quadratic; 1 at full load). Below PLR_MIN the
    compressor cycles, so it draws the PLR_MIN power. A float in, a float out (the plant's
    per-tick path: plain float math, the same IEEE operations as numpy's)."""
    a, b, c = DOE2_RECIP_EIR_FPLR
    if isinstance(plr, float):
        x = _clamp(plr, DOE2_RECIP_PLR_MIN, 1.0)
        return a + b * x + c * (x * x)
    x = np.clip(np.asarray(plr, dtype=float), DOE2_RECIP_PLR_MIN, 1.0)
    return a + b * x + c * x ** 2


def chiller_power_w(heat_w: np.ndarray | float, capacity_w: float, cop_ref: float, chw_c: float,
                    cond_c: float) -> np.ndarray:
    """Compressor power removing `heat_w` (at most the capacity): DOE-2 / EnergyPlus
    P = capacity / COP_ref x EIR_FT(T_chw, T_cond) x EIR_FPLR(PLR), PLR = heat / capacity.
    Zero heat: zero power (the chiller is off)."""
    if capacity_w <= 0:
        return np.zeros(np.shape(heat_w))
    if isinstance(heat_w, float):  # one load (the plant's per tick): plain float math
        qf = _clamp(heat_w, 0.0, capacity_w)
        pf = capacity_w / cop_ref * chiller_eir_ft(chw_c, cond_c) * chiller_eir_fplr(qf / capacity_w)
        return pf if qf > 0 else 0.0
    q = np.clip(np.asarray(heat_w, dtype=float), 0.0, capacity_w)
    p = capacity_w / cop_ref * chiller_eir_ft(chw_c, cond_c) * chiller_eir_fplr(q / capacity_w)
    return np.where(q > 0, p, 0.0)


def condenser_entering_c(outdoor_wet_bulb_c: float, tower_approach_k: float) -> float:
    """Condenser water from a cooling tower: outdoor wet bulb + the tower's approach
    (typical design approach 4 K / 7 F; ASHRAE Handbook HVAC Systems and Equipment, ch. 40)."""
    return outdoor_wet_bulb_c + tower_approach_k


def heat_rejection_w(rejected_w: np.ndarray | float, w_per_kw: float) -> np.ndarray:
    """Cooling-tower fan power per kW of heat rejected (heat removed + compressor power).
    ASHRAE 90.1 Appendix G baseline tower: 38.2 gpm/hp at 3 gpm/ton = 16.7 W per kW rejected."""
    if isinstance(rejected_w, float):
        return rejected_w * w_per_kw / 1e3
    return np.asarray(rejected_w, dtype=float) * w_per_kw / 1e3


def loss_w(load_w: np.ndarray | float, rating_w: float, no_load_frac: float, proportional_frac: float,
           square_frac: float) -> np.ndarray:
    """Electrical losses a P_rated + b P + c P^2 / P_rated of a UPS or transformer carrying `load_w`
    (no-load, proportional and square-law losses; Schneider Electric WP 113)."""
    if isinstance(load_w, float):  # one load (the plant's per tick): plain float math
        return no_load_frac * rating_w + proportional_frac * load_w + square_frac * (load_w * load_w) / rating_w
    p = np.asarray(load_w, dtype=float)
    return no_load_frac * rating_w + proportional_frac * p + square_frac * p ** 2 / rating_w


@dataclass(frozen=True)
class PlantPower:
    """Facility power and its parts at one instant, W."""
    it_w: float
    crah_fans_w: float
    pumps_w: float
    chiller_w: float
    tower_w: float
    ups_loss_w: float
    transformer_loss_w: float
    fixed_w: float
    heat_removed_w: float
    heat_excess_w: float  # heat the plant could not remove (warms the room)

    @property
    def cooling_w(self) -> float:
        return self.crah_fans_w + self.pumps_w + self.chiller_w + self.tower_w

    @property
    def overhead_w(self) -> float:
        return self.ups_loss_w + self.transformer_loss_w + self.fixed_w

    @property
    def total_w(self) -> float:
        return self.it_w + self.cooling_w + self.overhead_w

    @property
    def pue(self) -> float:
        return self.total_w / self.it_w if self.it_w > 0 else float("nan")


def plant_power(it_w: float, *, capacity_w: float, crah_airflow_m3_s: float, crah_design_airflow_m3_s: float,
                plant: PlantSpec, electrical: ElectricalSpec, fixed_w: float,
                design_capacity_w: float | None = None) -> PlantPower:
    """Compose the plant for an IT load `it_w` (W at the server plugs).

    `capacity_w` is the cooling available now (CRAH units may be down); `design_capacity_w` (default:
    the same) sizes what does not trip with them: the constant-speed pumps and, unless
    `ups_rating_kw` is given, the UPS. UPS output = IT; the transformer carries UPS input. Heat the
    chiller removes: IT + CRAH fan heat (the fans sit in the air stream) + UPS/transformer losses
    and fixed loads (inside the cooled envelope), at most `capacity_w`; anything above stays in the
    room.
    """
    design = capacity_w if design_capacity_w is None else design_capacity_w
    ups_rating = electrical.ups_rating_kw * 1e3 if electrical.ups_rating_kw else design
    ups = float(loss_w(it_w, ups_rating, electrical.ups_no_load_frac, electrical.ups_proportional_frac,
                       electrical.ups_square_frac))
    trafo = float(loss_w(it_w + ups, ups_rating, electrical.transformer_no_load_frac, 0.0,
                         electrical.transformer_square_frac))
    fans = float(crah_fan_power_w(crah_airflow_m3_s, crah_design_airflow_m3_s, plant.crah_pressure_pa,
                                  plant.crah_fan_efficiency, plant.crah_variable_speed, plant.crah_min_speed_frac))
    heat = it_w + fans + ups + trafo + fixed_w
    removed = min(heat, capacity_w)
    cond_c = condenser_entering_c(plant.outdoor_wet_bulb_c, plant.tower_approach_k)
    chiller = float(chiller_power_w(removed, capacity_w, plant.chiller_cop_ref, plant.chilled_water_c, cond_c))
    return PlantPower(it_w=it_w, crah_fans_w=fans, pumps_w=pump_power_w(design, plant.pump_w_per_kw),
                      chiller_w=chiller, tower_w=float(heat_rejection_w(removed + chiller, plant.tower_w_per_kw)),
                      ups_loss_w=ups, transformer_loss_w=trafo, fixed_w=fixed_w, heat_removed_w=removed,
                      heat_excess_w=heat - removed)
