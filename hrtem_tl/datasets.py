"""The three dataset series (defocus, dose, structure) as data, their scenes, and their cached arrays.

One exit wave per scene feeds every defocus and dose dataset: a scene artefact stores the downsampled exit
wave(s), the particles-in-vacuum wave, the mask and the calibrated zero defocus; a dataset artefact applies the
optics and the dose of its domain to every scene of its split. STUDY.md section 3 gives the series.
"""

from __future__ import annotations

import hashlib
import json
import os
from copy import deepcopy
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import simulate as sim
from . import structures as st
from .cache import cache_dir, key_of, load_npz, load_or_none, save_npz
from .presets import PRESETS, Preset, get_preset, pin_other_particles
from .presets import command as preset_command

DEFOCUS_SD = 15.0  # Å, each image's defocus is drawn around its domain's with this sd (STUDY.md 3)
LABEL_LEVEL = 0.1  # the blurred label is a particle where > 0.1: its area then matches the projected discs
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Series:
    """A dataset series: which scenes, which domains, and the imaging conditions of each domain."""

    name: str
    group: str  # "cdse": the shared CdSe scenes; "structure": per-lattice scenes
    domains: tuple  # domain labels (str)
    sources: tuple  # pretraining domains
    unit: str
    fixed: dict

    def conditions(self, domain: str) -> dict:
        """Lattice, size class, defocus (Å) and dose (e-/Å2) of one domain."""
        if domain not in self.domains:
            raise ValueError(f"domain={domain!r} is not in the {self.name} series; allowed: {', '.join(self.domains)}")
        cond = dict(self.fixed)
        if self.name == "defocus":
            cond["defocus"] = float(domain)
        elif self.name == "dose":
            cond["dose"] = float(domain)
        else:
            cond["lattice"], cond["size"] = domain.rsplit("_", 1)
        return cond


STUDY_MATERIAL = "CdSe"  # the dose and defocus series' particles (STUDY.md 1)
DEFOCI = tuple(str(d) for d in range(-250, 251, 50))  # Å: -25..+25 nm in 5 nm steps
SERIES: dict[str, Series] = {
    "defocus": Series("defocus", "cdse", DEFOCI, ("-100", "-50", "0", "50", "100"), "Å",
                      {"lattice": STUDY_MATERIAL, "size": "cdse", "dose": 400.0}),
    "dose": Series("dose", "cdse", ("30", "75", "150", "300", "600"), ("30", "75", "150", "300", "600"), "e-/Å²",
                   {"lattice": STUDY_MATERIAL, "size": "cdse", "defocus": -100.0}),
    "structure": Series("structure", "structure",
                        tuple(f"{lat}_{size}" for lat in st.LATTICES for size in ("small", "large")),
                        tuple(f"{lat}_{size}" for lat in st.LATTICES for size in ("small", "large")), "",
                        {"defocus": -100.0, "dose": 300.0}),
}


def get_series(name: str, preset: Preset | None = None) -> Series:
    """The series called ``name``: the study's (``SERIES``), or as ``preset`` runs it (its domains, pretraining
    sources and fixed conditions from ``series_settings``, e.g. other doses)."""
    try:
        s = SERIES[name]
    except KeyError:
        raise ValueError(f"series={name!r} is unknown; allowed: {', '.join(SERIES)}") from None
    settings = preset.series_settings.get(name, {}) if preset is not None else {}
    if s.group == "cdse" and preset is not None and preset.particle_material:
        s = replace(s, fixed={**s.fixed, "lattice": preset.particle_material["name"]})
    if "fixed" in settings:
        s = replace(s, fixed={**s.fixed, **settings["fixed"]})
    if "domains" in settings:
        s = replace(s, domains=tuple(settings["domains"]), sources=tuple(settings.get("sources", settings["domains"])))
    return s


# ---------------------------------------------------------------- parameters in the study's units

# name -> (series it sets or None for the training, unit, what it is); a chapter's ``parameters`` cell, papermill's
# ``-p`` and ``--set NAME=VALUE`` use these names; the defaults are the study's (STUDY.md 3-4)
PARAMETERS = {
    "doses": ("dose", "e-/Å²", "the dose series' doses, two or more, each a domain and a pretraining source"),
    "dose_defocus": ("dose", "nm", "the dose series' fixed defocus"),
    "defocus_values": ("defocus", "nm", "the defocus series' defoci, two or more"),
    "pretrain_defocus": ("defocus", "nm", "the defoci that pretrain, among defocus_values"),
    "defocus_dose": ("defocus", "e-/Å²", "the defocus series' fixed dose"),
    "lattices": ("structure", "", "the structure series' materials: built-in lattices (the study's nine and Au) or "
                 "CIF files, each a small- and a large-particle domain"),
    "cif_label_blur": ("structure", "Å", "the label's Gaussian sigma for materials read from a CIF (default 1.6, "
                       "the study's for six of its nine materials)"),
    "material": (None, "", "the dose and defocus series' particle material (their shared scenes): a built-in "
                 "lattice or a CIF file (the study's CdSe, whose particles alone carry up to two stacking faults)"),
    "particle_diameters": (None, "nm", "the particles' diameters in the dose and defocus series (their shared "
                           "scenes, CdSe in the study), uniform in [low, high] (the study's 3-5)"),
    "small_radii": ("structure", "nm", "the structure series' small particles' radii, uniform in [low, high] (the "
                    "study's 1-2)"),
    "large_radii": ("structure", "nm", "the structure series' large particles' radii, uniform in [low, high] (the "
                    "study's 2.5-3.5)"),
    "structure_defocus": ("structure", "nm", "the structure series' fixed defocus"),
    "structure_dose": ("structure", "e-/Å²", "the structure series' fixed dose"),
    "voltage": (None, "kV", "the accelerating voltage, 60-300 (the study's 300)"),
    "cs": (None, "mm", "the spherical aberration (the study's 0: an aberration-corrected microscope)"),
    "focal_spread": (None, "Å", "the focal spread, abTEM's 1/e half-width of the defocus distribution (the "
                     "study's 10)"),
    "transfer_size": (None, "images", "target images of a transfer (dose, structure and the defocus heatmaps)"),
    "epochs": (None, "", "epochs of each training stage"),
    "learning_rates": (None, "", "(pretraining, transfer) learning rates of the dose, structure and defocus heatmaps"),
}


def study_parameters(preset: Preset | None = None) -> dict:
    """Every parameter's value: the study's, or as ``preset`` runs it (a list in the parameter's unit)."""
    dose, defocus, structure = (get_series(n, preset) for n in ("dose", "defocus", "structure"))
    out = {"doses": [float(d) for d in dose.domains], "dose_defocus": dose.fixed["defocus"] / 10,
           "defocus_values": [float(d) / 10 for d in defocus.domains],
           "pretrain_defocus": [float(d) / 10 for d in defocus.sources], "defocus_dose": defocus.fixed["dose"],
           "lattices": list(dict.fromkeys(d.rsplit("_", 1)[0] for d in structure.domains)),
           "cif_label_blur": _cif_label_blur(preset),
           "structure_defocus": structure.fixed["defocus"] / 10, "structure_dose": structure.fixed["dose"]}
    out["material"] = particle_lattice(preset).name
    diameters = preset.cdse_diameter if preset is not None else st.CDSE_DIAMETER
    radii = preset.size_radius if preset is not None else st.SIZE_CLASSES
    out.update(particle_diameters=[_nm(d) for d in diameters], small_radii=[_nm(r) for r in radii["small"]],
               large_radii=[_nm(r) for r in radii["large"]])
    scope = sim.microscope({"microscope": preset.microscope} if preset is not None else None)
    out.update(voltage=scope["energy"] / 1e3, cs=scope["cs"] / 1e7, focal_spread=scope["focal_spread"])
    if preset is not None:
        out.update(transfer_size=preset.transfer_size, epochs=preset.epochs, learning_rates=list(preset.main_lr))
    return out


def crystals_of(preset: Preset | None) -> dict:
    """The CIF materials a preset images in the structure series: {name: crystal spec} (none: {})."""
    return preset.series_settings.get("structure", {}).get("crystals", {}) if preset is not None else {}


def particle_lattice(preset: Preset | None):
    """The material of the dose and defocus series' particles: the study's CdSe, a built-in lattice, or the CIF
    crystal the preset carries (``Preset.particle_material``)."""
    material = preset.particle_material if preset is not None else {}
    if "crystal" in material:
        return st.Crystal.from_spec(material["crystal"])
    return st.get_lattice(material.get("name", STUDY_MATERIAL))


def _cif_label_blur(preset: Preset | None) -> float:
    """The label sigma (Å) of the CIF materials a preset images (the default when it images none)."""
    specs = [*crystals_of(preset).values()]
    if preset is not None and "crystal" in preset.particle_material:
        specs.append(preset.particle_material["crystal"])
    return next((c["label_blur"] for c in specs), st.CIF_LABEL_BLUR)


def _nm(angstrom: float) -> float:
    return round(angstrom / 10, 6)


def changed_parameters(preset: Preset) -> dict:
    """The scientific parameters ``preset`` runs with that differ from its registered preset's (the page says
    them): the study's defaults for every preset but ``smoke``, whose particles are scaled down to its field."""
    study = study_parameters(None)
    base = study_parameters(PRESETS[preset.name]) if preset.name in PRESETS else study
    return {k: v for k, v in study_parameters(preset).items() if k in study and v != base[k]}


def command(verb: str, series: str, preset: Preset, cache=None) -> str:
    """The whole command that makes what is missing (``presets.command``) with ``--set`` for every scientific
    parameter the preset runs with that is not the study's (a CIF material by its file name: give its path)."""
    import shlex

    crystals = set(crystals_of(preset))  # the CIF materials, shown by their file names
    if "crystal" in preset.particle_material:
        crystals.add(preset.particle_material["name"])

    def shown(name, value):
        if isinstance(value, str):  # the material: a CIF one by its file name
            return f"{value}.cif" if value in crystals else value
        if isinstance(value, list):
            items = [f"{v}.cif" if name == "lattices" and v in crystals else v for v in value]
            return ",".join(v if isinstance(v, str) else f"{v:g}" for v in items)
        return f"{value:g}"

    sets = [f"--set {shlex.quote(f'{k}={shown(k, v)}')}" for k, v in changed_parameters(preset).items()]
    return " ".join([preset_command(verb, series, preset, cache), *sets])


def parse_value(name: str, value):
    """A parameter's value from the command line or papermill (``"[10, 20]"``, ``"-5"``) or Python."""
    if isinstance(value, str):
        import ast

        try:
            parsed = ast.literal_eval(value.strip())
            return list(parsed) if isinstance(parsed, tuple) else parsed  # "10,20": a list
        except (ValueError, SyntaxError):
            if name == "lattices":  # names and paths without quotes: Cu,Au,my/oxide.cif
                return [part.strip() for part in value.split(",") if part.strip()]
            if name == "material":  # a name or a path without quotes
                return value.strip()
            raise ValueError(f"{name}={value!r} is not a number or a list of numbers") from None
    return value


def parse_setting(text: str) -> tuple[str, object]:
    """``"doses=[10, 20]"`` -> ``("doses", [10, 20])``; a one-line error names the allowed names."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or name not in PARAMETERS:
        raise ValueError(f"--set {text!r}: expected NAME=VALUE with NAME one of {', '.join(PARAMETERS)}")
    return name, parse_value(name, value)


def _numbers(name: str, value, unit: str, at_least: int = 2, positive: bool = False) -> list[float]:
    items = value if isinstance(value, (list, tuple)) else None
    try:
        numbers = [float(v) for v in items] if items is not None else None
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or len(numbers) < at_least or len(set(numbers)) != len(numbers) \
            or not all(np.isfinite(numbers)) or (positive and min(numbers) <= 0):
        need = "positive " if positive else ""
        raise ValueError(f"{name}={value!r} must be a list of {at_least} or more distinct {need}numbers ({unit})")
    return numbers


def _number(name: str, value, unit: str, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or (positive and number <= 0):
        raise ValueError(f"{name}={value!r} must be a {'positive ' if positive else ''}number ({unit})")
    return number


def _size_range(name: str, value, largest: float) -> tuple[float, float]:
    """A particle-size range in nm -> (low, high) in Å: two positive numbers, low <= high <= ``largest`` nm."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    try:
        low, high = (float(v) for v in value) if ok else (float("nan"),) * 2
    except (TypeError, ValueError):
        low = high = float("nan")
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high <= largest):
        raise ValueError(f"{name}={value!r} must be two numbers [low, high] in nm with 0 < low <= high <= "
                         f"{largest:g} (a particle must fit the {largest * (2 if 'radii' in name else 1) * 10:g} Å "
                         f"field)")
    return round(low * 10, 6), round(high * 10, 6)


def _set_sizes(preset: Preset, given: dict) -> Preset:
    """``preset`` with the particle sizes of ``given`` (nm): the CdSe diameters and the structure series' radii."""
    field = preset.extent / 10  # nm
    out = preset
    if "particle_diameters" in given:
        out = replace(out, cdse_diameter=_size_range("particle_diameters", given["particle_diameters"], field))
    radii = dict(out.size_radius)
    for size in ("small", "large"):
        if f"{size}_radii" in given:
            radii[size] = _size_range(f"{size}_radii", given[f"{size}_radii"], field / 2)
    if radii != out.size_radius:
        out = replace(out, size_radius=radii)
    return out


def _label(value: float) -> str:
    """A domain label: ``30``, ``-100`` (Å or e-/Å², as the study's labels), ``12.5``."""
    return f"{value:g}"


def _set_domains(settings: dict, changed: bool, domains: tuple, sources: tuple) -> None:
    """A series' domains and sources in its settings, or none when they are the study's."""
    if changed:
        settings.update(domains=domains, sources=sources)
    else:
        settings.pop("domains", None)
        settings.pop("sources", None)


BUILT_IN_LATTICES = (*st.LATTICES, *st.EXTRA_LATTICES)  # the study's nine and gold


def _is_cif_path(item: str) -> bool:
    """A material given as a file (a ``.cif`` name or any path), not as a built-in lattice's name."""
    return item.lower().endswith(".cif") or os.sep in item


def _set_lattices(settings: dict, lattices, label_blur: float, study: list) -> None:
    """The structure series' domains for ``lattices`` (built-in names or CIF paths), with the cells of the CIF
    materials (``crystals``) that its scene specs carry."""
    if isinstance(lattices, str):
        lattices = [lattices]
    if not isinstance(lattices, (list, tuple)) or not lattices or not all(isinstance(x, str) for x in lattices):
        raise ValueError(f"lattices={lattices!r} must be a list of one or more lattice names "
                         f"({', '.join(BUILT_IN_LATTICES)}) or CIF files")
    names, crystals, known = [], {}, settings.get("crystals", {})
    for item in lattices:
        if item in known:  # a CIF material this preset already images, by its name
            crystals[item] = known[item]
            names.append(item)
        elif _is_cif_path(item):
            crystal = st.read_cif(item, label_blur)
            crystals[crystal.name] = crystal.as_spec()
            names.append(crystal.name)
        elif item in BUILT_IN_LATTICES:
            names.append(item)
        else:
            raise ValueError(f"lattices: {item!r} is neither a built-in lattice ({', '.join(BUILT_IN_LATTICES)}) "
                             "nor a CIF file (*.cif)")
    if len(set(names)) != len(names):
        raise ValueError(f"lattices={list(lattices)!r} names a material twice")
    settings.pop("crystals", None)
    domains = tuple(f"{n}_{size}" for n in names for size in ("small", "large"))
    _set_domains(settings, names != study, domains, domains)
    if crystals:
        settings["crystals"] = crystals


def _material(value, current: dict, label_blur: float) -> dict:
    """``Preset.particle_material`` for ``material``: {} for the study's CdSe, a built-in lattice by name, a CIF file
    read with ASE (its cell travels in the scene specs), or the CIF material the preset already images by its name."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"material={value!r} must be one lattice name ({', '.join(BUILT_IN_LATTICES)}) or a CIF "
                         "file")
    value = value.strip()
    if value == current.get("name"):
        return deepcopy(current)
    if _is_cif_path(value):
        crystal = st.read_cif(value, label_blur, parameter="material")
        return {"name": crystal.name, "crystal": crystal.as_spec()}
    if value not in BUILT_IN_LATTICES:
        raise ValueError(f"material: {value!r} is neither a built-in lattice ({', '.join(BUILT_IN_LATTICES)}) nor a "
                         "CIF file (*.cif)")
    return {} if value == STUDY_MATERIAL else {"name": value}


VOLTAGE_RANGE = (60.0, 300.0)  # kV: the accelerating voltages of HRTEM instruments
MAX_CS = 10.0  # mm: uncorrected objective lenses have 0.5-3 mm
MAX_FOCAL_SPREAD = 200.0  # Å


def _microscope(current: dict, given: dict) -> dict:
    """The preset's ``microscope`` with the given voltage (kV), cs (mm) and focal_spread (Å): the entries that
    differ from the study's (``simulate.MICROSCOPE``), in eV and Å."""
    out = dict(current)
    for name, key, scale, check, allowed in (
            ("voltage", "energy", 1e3, lambda v: VOLTAGE_RANGE[0] <= v <= VOLTAGE_RANGE[1],
             f"from {VOLTAGE_RANGE[0]:g} to {VOLTAGE_RANGE[1]:g} kV"),
            ("cs", "cs", 1e7, lambda v: abs(v) <= MAX_CS, f"from -{MAX_CS:g} to {MAX_CS:g} mm"),
            ("focal_spread", "focal_spread", 1.0, lambda v: 0 <= v <= MAX_FOCAL_SPREAD,
             f"from 0 to {MAX_FOCAL_SPREAD:g} Å")):
        if name not in given:
            continue
        try:
            value = float(given[name])
        except (TypeError, ValueError):
            value = float("nan")
        if not (np.isfinite(value) and check(value)):
            raise ValueError(f"{name}={given[name]!r} must be a number {allowed}")
        if value * scale == sim.MICROSCOPE[key]:
            out.pop(key, None)  # the study's value: the study's keys
        else:
            out[key] = value * scale
    return out


def with_parameters(preset: Preset, settings: dict | None = None, **params) -> Preset:
    """``preset`` with scientific parameters in the study's units (``PARAMETERS``; None: the study's value),
    from a dict and/or keywords; each bad value is a one-line error naming the parameter and what is allowed.
    Only what differs from the study enters the preset, so the study's values keep every cache key."""
    given = {**(settings or {}), **{k: v for k, v in params.items() if v is not None}}
    unknown = sorted(set(given) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"parameter {unknown[0]!r} is unknown; allowed: {', '.join(PARAMETERS)}")
    given = {k: parse_value(k, v) for k, v in given.items() if v is not None}
    study = study_parameters()
    per_series = {name: {k: deepcopy(v) for k, v in preset.series_settings.get(name, {}).items()} for name in SERIES}
    if "doses" in given:
        doses = sorted(_numbers("doses", given["doses"], "e-/Å²", positive=True))
        _set_domains(per_series["dose"], doses != study["doses"], tuple(_label(d) for d in doses),
                     tuple(_label(d) for d in doses))
    for name, series, key, unit, scale, positive in (
            ("dose_defocus", "dose", "defocus", "nm", 10, False), ("defocus_dose", "defocus", "dose", "e-/Å²", 1, True),
            ("structure_defocus", "structure", "defocus", "nm", 10, False),
            ("structure_dose", "structure", "dose", "e-/Å²", 1, True)):
        if name in given:
            value = _number(name, given[name], unit, positive)
            fixed = per_series[series].setdefault("fixed", {})
            if value != study[name]:
                fixed[key] = value * scale
            else:  # the study's value: the study's keys
                fixed.pop(key, None)
            if not fixed:
                del per_series[series]["fixed"]
    if "defocus_values" in given or "pretrain_defocus" in given:
        values = _numbers("defocus_values", given.get("defocus_values", study["defocus_values"]), "nm")
        default = [v for v in study["pretrain_defocus"] if v in values] or values
        sources = _numbers("pretrain_defocus", given.get("pretrain_defocus", default), "nm", at_least=1)
        if not set(sources) <= set(values):
            raise ValueError(f"pretrain_defocus={given.get('pretrain_defocus')!r} must be among defocus_values "
                             f"({', '.join(f'{v:g}' for v in sorted(values))} nm)")
        changed = sorted(values) != sorted(study["defocus_values"]) or \
            sorted(sources) != sorted(study["pretrain_defocus"])
        _set_domains(per_series["defocus"], changed, tuple(_label(v * 10) for v in sorted(values)),
                     tuple(_label(v * 10) for v in sorted(sources)))
    if "lattices" in given or "cif_label_blur" in given:
        _set_lattices(per_series["structure"], given.get("lattices", study["lattices"]),
                      _number("cif_label_blur", given.get("cif_label_blur", st.CIF_LABEL_BLUR), "Å", positive=True),
                      study["lattices"])
    out = replace(preset, series_settings={k: v for k, v in per_series.items() if v},
                  microscope=_microscope(preset.microscope, given))
    if "material" in given:
        out = replace(out, particle_material=_material(
            given["material"], preset.particle_material,
            _number("cif_label_blur", given.get("cif_label_blur", st.CIF_LABEL_BLUR), "Å", positive=True)))
    out = _set_sizes(out, given)
    if "transfer_size" in given:
        n = given["transfer_size"]
        most = min(out.n_train, out.structure_train)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= most:
            raise ValueError(f"transfer_size={n!r} must be a whole number of images from 1 to {most} (the "
                             f"smallest training split at preset {preset.name})")
        out = replace(out, transfer_size=n)
    if "epochs" in given:
        e = given["epochs"]
        if not isinstance(e, int) or isinstance(e, bool) or e < 1:
            raise ValueError(f"epochs={e!r} must be a whole number, 1 or more")
        out = replace(out, epochs=e)
    if "learning_rates" in given:
        rates = given["learning_rates"]
        ok = isinstance(rates, (list, tuple)) and len(rates) == 2
        rates = _numbers("learning_rates", rates, "", positive=True) if ok else None
        if not ok or max(rates) >= 1:
            raise ValueError(f"learning_rates={given['learning_rates']!r} must be two positive numbers below 1: "
                             f"(pretraining, transfer)")
        out = replace(out, main_lr=tuple(rates), lr_pairs=tuple(dict.fromkeys((tuple(rates), *out.lr_pairs))))
    return out


def series_names(name: str) -> list[str]:
    """``all`` or one series name -> list of names (validated)."""
    return list(SERIES) if name == "all" else [get_series(name).name]


# ---------------------------------------------------------------- scenes

def split_count(series: Series, preset: Preset, split: str) -> int:
    """Scenes of one split of a dataset of ``series`` (large-particle training sets hold large_train_scale x)."""
    n = {"cdse": (preset.n_train, preset.n_val), "structure": (preset.structure_train, preset.structure_val)}
    return n[series.group][SPLITS.index(split)]


def scene_specs(series: Series, preset: Preset, split: str) -> list[dict]:
    """The scenes behind one split of a series: lattice, size class, index and the simulation parameters."""
    count, preset = split_count(series, preset, split), preset.for_series(series.name)
    if series.group == "cdse":
        kinds = [(particle_lattice(preset).name, "cdse")]
    else:
        kinds = [tuple(d.rsplit("_", 1)) for d in series.domains]
    scale = {"large": preset.large_train_scale if split == "train" else 1}
    crystals = dict(preset.series_settings.get(series.name, {}).get("crystals", {}))  # CIF materials: their cells
    if series.group == "cdse" and "crystal" in preset.particle_material:
        crystals[preset.particle_material["name"]] = preset.particle_material["crystal"]
    sim_params = pin_other_particles(preset.simulation_params(), preset.name, cdse=series.group == "cdse")
    specs = [{"lattice": lat, "size": size, "split": split, "index": i, "sim": deepcopy(sim_params)}
             for lat, size in kinds for i in range(count * scale.get(size, 1))]
    for spec in specs:
        if spec["lattice"] in crystals:
            spec["crystal"] = deepcopy(crystals[spec["lattice"]])
    return specs


def lattice_of(spec: dict):
    """The lattice of a scene spec: a built-in one by name, or the crystal (from a CIF) the spec holds."""
    return st.Crystal.from_spec(spec["crystal"]) if "crystal" in spec else st.get_lattice(spec["lattice"])


def _seed(spec: dict) -> int:
    """A 63-bit seed from a spec (independent of the package version)."""
    return int(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:15], 16)


def scene_path(spec: dict, cache) -> Path:
    return cache_dir(cache) / "scenes" / spec["lattice"] / f"{spec['size']}-{spec['split']}-{key_of(spec)}.npz"


def _radius_range(spec: dict) -> tuple[float, float]:
    p = spec["sim"]
    if spec["size"] == "cdse":
        return p["cdse_diameter"][0] / 2, p["cdse_diameter"][1] / 2
    return tuple(p["size_radius"][spec["size"]])


def build_scene(spec: dict, rng: np.random.Generator) -> tuple[st.Scene, int]:
    """Atoms of a scene: n particles drawn in the preset's range, lowered until they fit at >= 1 nm apart."""
    p = spec["sim"]
    lo, hi = p["particles"][spec["size"]]
    n = int(rng.integers(lo, hi + 1))
    thickness = float(rng.uniform(*p["substrate_thickness"]))
    faults = 2 if spec["lattice"] == "CdSe" else 0  # the study's stacking faults are its CdSe particles' (STUDY.md 1)
    while True:
        radii = rng.uniform(*_radius_range(spec), size=n)
        try:
            return st.make_scene(lattice_of(spec), radii, p["extent"], thickness, rng, max_faults=faults), n
        except ValueError:
            if n == 1:
                raise
            n -= 1


def configure_abtem() -> None:
    """abTEM in float32 with one FFTW thread (one worker per core), for the plain-abTEM reference path."""
    import abtem

    abtem.config.set({"fftw.threads": 1, "precision": "float32", "device": "cpu"})


def wisdom_path(cache=None) -> Path:
    """Where this machine's FFTW wisdom lives in the cache (see ``multislice.plan_once``)."""
    from .multislice import wisdom_file

    return wisdom_file(cache_dir(cache) / "fftw")


def plan_fftw(preset: Preset, cache=None) -> None:
    """Measure the FFTW plans of a preset's grids once, in this process, before the workers start.

    FFTW_MEASURE (``$HRTEM_TL_FFTW_PLANNING``, the default) times candidate algorithms and keeps the fastest: at
    the paper grid (1280^2, one thread) a complex FFT takes 7.0 ms against 15.3 ms with FFTW_ESTIMATE. The
    choice is saved as wisdom in the cache and every worker imports it, so all run the same plans and a seed's
    data stay bit-identical on this machine whichever worker makes them.
    """
    from . import multislice

    planning = sim.fftw_planning()
    grid = (int(round(preset.extent / preset.sim_sampling)),) * 2
    out = (preset.image_pixels, preset.image_pixels)
    multislice.plan_once(wisdom_path(cache), [lambda: multislice.engine(grid, planning),
                                              lambda: sim.batched_inverse_fft((sim.CALIBRATION_BATCH, *out))])


def image_scene(scene: st.Scene, sim_params: dict, lattice, seed: int, exit_waves=None) -> dict:
    """The imaging of one scene: exit waves (each phonon configuration), the particles-in-vacuum wave, both on
    the output pixel; the label mask; the calibrated zero defocus (Å). ``exit_waves`` defaults to
    ``simulate.exit_waves`` on the CPU (the benchmark passes plain abTEM's)."""
    p = sim_params
    exit_waves = exit_waves or sim.exit_waves
    factor = int(round(p["pixel_size"] / p["sim_sampling"]))
    optics = sim.microscope(p)  # the study's unless the preset sets another
    waves = exit_waves(scene.atoms, p["sim_sampling"], p["slice_thickness"], p["n_phonons"], seed % 2**31,
                       energy=optics["energy"])
    # the label and the calibration come from abTEM's exact band limit (a small share of the cost)
    vacuum = exit_waves(scene.particles, p["sim_sampling"], p["slice_thickness"], 0, 0, exact=True,
                        energy=optics["energy"])
    waves, vacuum = sim.fourier_crop(waves, factor), sim.fourier_crop(vacuum, factor)[0]
    soft = sim.soft_label(vacuum, p["pixel_size"], st.get_lattice(lattice).label_blur)  # a name or a lattice
    return {"waves": waves, "vacuum": vacuum, "mask": (soft > LABEL_LEVEL).astype(np.uint8),
            "zero_defocus": sim.calibrate_zero_defocus(vacuum, p["pixel_size"], **optics)}


def simulate_scene(spec: dict, cache=None, device: str = "cpu") -> str:
    """Simulate one scene (if not cached) and return its artefact path."""
    from functools import partial

    from .multislice import use_wisdom

    path = scene_path(spec, cache)
    if load_or_none(path) is not None:
        return str(path)
    use_wisdom(wisdom_path(cache))
    seed = _seed(spec)
    rng = np.random.default_rng(seed)
    scene, n = build_scene(spec, rng)
    lattice = lattice_of(spec)
    arrays = image_scene(scene, spec["sim"], lattice, seed, partial(sim.exit_waves, device=device))
    meta = {"spec": spec, "seed": seed, "n_particles": n, "radii": scene.radii, "centres": scene.centres,
            "substrate_thickness": scene.substrate_thickness, "projected_area": scene.projected_area,
            "n_atoms": len(scene.atoms), "zero_defocus": arrays.pop("zero_defocus"),
            "label_blur": lattice.label_blur}
    # stored, not compressed: complex noise-like waves shrink by ~10 % for a 5x longer write
    save_npz(path, meta, compress=False, **arrays)
    return str(path)


# ---------------------------------------------------------------- datasets

@dataclass
class Dataset:
    """Images (float32 electron counts, n x h x w), masks (uint8 0/1) and metadata of one dataset."""

    images: np.ndarray
    masks: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.images)


def dataset_spec(series: str, domain: str, split: str, preset: str | Preset) -> dict:
    pr = get_preset(preset).for_series(series)
    s = get_series(series, pr)
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; allowed: {', '.join(SPLITS)}")
    cond = s.conditions(domain)
    specs = [sp for sp in scene_specs(s, pr, split) if s.group == "cdse"
             or (sp["lattice"], sp["size"]) == (cond["lattice"], cond["size"])]
    return {"series": series, "domain": domain, "split": split, "preset": pr.name, "conditions": cond,
            "defocus_sd": DEFOCUS_SD, "pixel_size": pr.pixel_size, "count_pixel_size": pr.count_pixel_size,
            "scenes": [key_of(sp) for sp in specs],
            "scene_specs": specs}


def dataset_path(series: str, domain: str, split: str, preset: str | Preset, cache=None) -> Path:
    spec = dataset_spec(series, domain, split, preset)
    key = key_of({k: v for k, v in spec.items() if k != "scene_specs"})
    return cache_dir(cache) / "datasets" / get_preset(preset).name / series / f"{domain}-{split}-{key}.npz"


def derive_dataset(series: str, domain: str, split: str, preset: str | Preset, cache=None) -> Path:
    """Apply the domain's optics and dose to every scene of the split; write the dataset artefact."""
    spec = dataset_spec(series, domain, split, preset)
    path = dataset_path(series, domain, split, preset, cache)
    if load_or_none(path) is not None:
        return path
    cond, pixel = spec["conditions"], spec["pixel_size"]
    images, masks, defoci, zeros = [], [], [], []
    for i, sspec in enumerate(spec["scene_specs"]):
        loaded = load_or_none(scene_path(sspec, cache))
        if loaded is None:
            raise FileNotFoundError(f"scene {scene_path(sspec, cache)} is missing; run "
                                    f"`{command('simulate', series, get_preset(spec['preset']), cache)}`")
        smeta, arr = loaded
        rng = np.random.default_rng([_seed({k: spec[k] for k in ("series", "domain", "split")}), i])
        defocus = float(rng.normal(cond["defocus"], DEFOCUS_SD))
        clean = sim.intensity(arr["waves"], pixel, defocus + smeta["zero_defocus"], **sim.microscope(sspec["sim"]))
        images.append(sim.apply_dose(clean, cond["dose"], spec["count_pixel_size"] or pixel, rng))
        masks.append(arr["mask"])
        defoci.append(defocus)
        zeros.append(smeta["zero_defocus"])
    meta = {k: v for k, v in spec.items() if k != "scene_specs"}
    meta.update(lattice=cond["lattice"], size=cond["size"], dose=cond["dose"], defocus_mean=cond["defocus"],
                seed=_seed({k: spec[k] for k in ("series", "domain", "split")}))
    save_npz(path, meta, images=np.stack(images), masks=np.stack(masks), defocus=np.array(defoci),
             zero_defocus=np.array(zeros))
    return path


def load(path: str | os.PathLike) -> Dataset:
    """Read a dataset artefact written by :func:`derive_dataset`."""
    meta, arr = load_npz(Path(path))
    meta["defocus"] = arr["defocus"].tolist()
    meta["zero_defocus"] = arr["zero_defocus"].tolist()
    return Dataset(images=arr["images"], masks=arr["masks"], meta=meta)


def load_dataset(series: str, domain: str, split: str, preset: str | Preset, cache=None) -> Dataset:
    """The dataset of one (series, domain, split); a clear error names the command that makes it."""
    path = dataset_path(series, domain, split, preset, cache)
    if not path.exists():
        raise FileNotFoundError(f"dataset {series}/{domain}/{split} of preset {get_preset(preset).name} is missing; "
                                f"run `{command('simulate', series, get_preset(preset), cache)}`")
    return load(path)


# ---------------------------------------------------------------- the whole stage

def all_scene_specs(names: list[str], preset: Preset) -> list[dict]:
    """Unique scene specs of the given series (defocus and dose share theirs)."""
    seen, out = set(), []
    for name in names:
        for split in SPLITS:
            for spec in scene_specs(get_series(name, preset), preset, split):
                k = key_of(spec)
                if k not in seen:
                    seen.add(k)
                    out.append(spec)
    return out


def simulate_series(series: str = "all", preset: str | Preset = "cpu", cache=None, device: str = "cpu",
                    scheduler: str | None = None, progress: bool = True) -> list[Path]:
    """Make every scene and dataset of ``series`` that is missing; return the dataset paths.

    ``scheduler``: None starts a local Dask cluster (one single-threaded worker per core); ``"synchronous"``
    runs in this process; any other value is the address of an existing Dask scheduler.
    """
    from .parallel import run_tasks

    names, pr = series_names(series), get_preset(preset)
    sim.check_device(device)
    missing = [s for s in all_scene_specs(names, pr) if load_or_none(scene_path(s, cache)) is None]
    if missing:  # one set of plans per output size (a series may run on pixels of its own)
        for resolved in {p.image_pixels: p for p in map(pr.for_series, names)}.values():
            plan_fftw(resolved, cache)
    run_tasks(simulate_scene, missing, dict(cache=str(cache_dir(cache)), device=device), scheduler=scheduler,
              desc="scenes", progress=progress, gpu=device == "cuda", unit="scene")
    every = [(name, domain, split) for name in names for domain in get_series(name, pr).domains for split in SPLITS]
    todo = [d for d in every if load_or_none(dataset_path(*d, pr, cache)) is None]
    run_tasks(_derive, todo, dict(preset=pr, cache=str(cache_dir(cache))), scheduler=scheduler, desc="datasets",
              progress=progress, unit="dataset")
    return [dataset_path(*d, pr, cache) for d in every]


def _derive(item: tuple[str, str, str], preset: Preset, cache) -> str:
    return str(derive_dataset(*item, preset, cache))
