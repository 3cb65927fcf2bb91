"""The survey registry: one Python source of truth for every survey binarycat knows.

Values come from ``shared/reference/surveys.md``; where that file marks a value as recalled
rather than documented, the note on the survey says so. HiPS ids are only listed for filters
whose id was seen in a document; a filter without one cannot be fetched through hips2fits.

Examples
--------
>>> from binarycat.ingest.surveys import get_survey
>>> s = get_survey("ps1")
>>> s.name, s.aperture_m, s.filter_names
('PanSTARRS', 1.8, ('g', 'r', 'i', 'z', 'y'))
>>> round(s.diffraction_limit_arcsec, 3)
0.105
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from binarycat.errors import UnknownSurveyError

__all__ = [
    "Filter", "Survey", "SURVEYS", "get_survey", "parse_survey_list", "survey_names", "survey_rows",
    "sync_survey_table",
]

_RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0


@dataclass(frozen=True)
class Filter:
    """One band of a survey.

    Parameters
    ----------
    name : str
        Short band name as used in file names (``g``, ``J``, ``W1``, ``F150W``).
    wavelength_um : float
        Effective wavelength in micrometres.
    hips_id : str or None
        HiPS id for hips2fits, or None where no id has been seen in a document.
    """

    name: str
    wavelength_um: float
    hips_id: str | None = None


@dataclass(frozen=True)
class Survey:
    """An imaging survey and the numbers that decide what it can resolve.

    Attributes
    ----------
    name : str
        Canonical name (``PanSTARRS``), used in tables, file names and the CLI.
    title : str
        Full name.
    aperture_m : float
        Primary mirror diameter in metres.
    filters : tuple of Filter
        The survey's bands, blue to red.
    pixel_scale_arcsec : float
        Native pixel scale of the survey's images (arcsec/pixel).
    fwhm_arcsec : float
        Typical point-source FWHM (seeing- or diffraction-limited, whichever dominates).
    sky : str
        ``"all-sky"``, ``"partial"`` or ``"pointed"``.
    sky_fraction : float
        Approximate fraction of the sky covered.
    coverage : str
        Words on the footprint.
    aliases : tuple of str
        Other names users type for it; matched case-insensitively, ignoring ``-``, ``_`` and spaces.
    notes : str
        Provenance caveats.
    """

    name: str
    title: str
    aperture_m: float
    filters: tuple[Filter, ...]
    pixel_scale_arcsec: float
    fwhm_arcsec: float
    sky: str
    sky_fraction: float
    coverage: str
    aliases: tuple[str, ...] = ()
    notes: str = ""

    @property
    def filter_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.filters)

    @property
    def reference_wavelength_um(self) -> float:
        """Median effective wavelength of the survey's bands (micrometres)."""
        waves = sorted(f.wavelength_um for f in self.filters)
        return waves[len(waves) // 2]

    @property
    def diffraction_limit_arcsec(self) -> float:
        """Rayleigh limit 1.22 λ/D at the reference wavelength, in arcseconds."""
        return self.diffraction_limit_at(self.reference_wavelength_um)

    def diffraction_limit_at(self, wavelength_um: float) -> float:
        """Rayleigh limit 1.22 λ/D at ``wavelength_um``, in arcseconds."""
        return 1.22 * wavelength_um * 1e-6 / self.aperture_m * _RAD_TO_ARCSEC

    @property
    def is_partial(self) -> bool:
        return self.sky != "all-sky"

    def filter(self, name: str) -> Filter:
        """Return the band called ``name`` (case-sensitive first, then case-insensitive)."""
        for f in self.filters:
            if f.name == name:
                return f
        for f in self.filters:
            if f.name.lower() == name.lower():
                return f
        raise UnknownSurveyError(
            f"{self.name} has no filter {name!r}; its filters are {', '.join(self.filter_names)}."
        )

    def resolves(self, separation_arcsec: float) -> bool:
        """Whether two equal point sources ``separation_arcsec`` apart are resolved (sep >= FWHM)."""
        return separation_arcsec >= self.fwhm_arcsec


def _f(name, wave, hips=None):
    return Filter(name, wave, hips)


SURVEYS: dict[str, Survey] = {
    s.name: s
    for s in [
        Survey(
            "2MASS", "Two Micron All Sky Survey", 1.3,
            (_f("J", 1.235, "CDS/P/2MASS/J"), _f("H", 1.662, "CDS/P/2MASS/H"),
             _f("Ks", 2.159, "CDS/P/2MASS/K")),
            1.0, 2.7, "all-sky", 0.99998, "all sky (99.998 %)",
            aliases=("twomass", "2mass-atlas"),
            notes="Two 1.3 m telescopes; camera pixels are 2.0\", Atlas images 1.0\". FWHM ~2.5-3\" (recalled).",
        ),
        Survey(
            "ZTF", "Zwicky Transient Facility", 1.22,
            (_f("g", 0.48, "CDS/P/ZTF/DR7/g"), _f("r", 0.64, "CDS/P/ZTF/DR7/r"),
             _f("i", 0.79, "CDS/P/ZTF/DR7/i")),
            1.01, 2.0, "partial", 0.75, "northern sky, Dec >~ -30 deg",
            aliases=("ztfdr7",),
            notes="48-inch Oschin Schmidt; 1.01\"/px recalled.",
        ),
        Survey(
            "NEOWISER", "NEOWISE Reactivation", 0.40,
            (_f("W1", 3.4, "CDS/P/NEOWISER/W1"), _f("W2", 4.6, "CDS/P/NEOWISER/W2")),
            2.75, 6.1, "all-sky", 1.0, "all sky",
            aliases=("neowise", "neowiser", "neowise-r"),
            notes="W1/W2 only; FWHM 6.1\" (W1), 6.4\" (W2).",
        ),
        Survey(
            "unWISE", "unWISE coadds of WISE and NEOWISE", 0.40,
            (_f("W1", 3.4, "CDS/P/unWISE/W1"), _f("W2", 4.6, "CDS/P/unWISE/W2")),
            2.75, 6.1, "all-sky", 1.0, "all sky",
            aliases=("unwise", "wise"),
        ),
        Survey(
            "SkyMapper", "SkyMapper Southern Sky Survey", 1.3,
            (_f("u", 0.35, "CDS/P/Skymapper-U"), _f("v", 0.38, "CDS/P/Skymapper-V"),
             _f("g", 0.51, "CDS/P/Skymapper/DR4/g"), _f("r", 0.62, "CDS/P/Skymapper/DR4/r"),
             _f("i", 0.78, "CDS/P/Skymapper/DR4/i"), _f("z", 0.92, "CDS/P/Skymapper-Z")),
            0.5, 2.5, "partial", 0.63, "southern hemisphere, 26 000 deg2 (DR4)",
            aliases=("smss", "sky-mapper"),
            notes="Aperture also quoted as 1.35 m; u, v, z use DR1 HiPS (no DR4 id seen); FWHM ~2-3\" recalled.",
        ),
        Survey(
            "SDSS9", "Sloan Digital Sky Survey DR9 imaging", 2.5,
            (_f("u", 0.355, "CDS/P/SDSS9/u"), _f("g", 0.469, "CDS/P/SDSS9/g"),
             _f("r", 0.617, "CDS/P/SDSS9/r"), _f("i", 0.748, "CDS/P/SDSS9/i"),
             _f("z", 0.893, "CDS/P/SDSS9/z")),
            0.396, 1.4, "partial", 0.35, "about a third of the sky, mostly north",
            aliases=("sdss", "sdssdr9", "sdss-dr9"),
            notes="FWHM 1.4\" (r, median) recalled.",
        ),
        Survey(
            "PanSTARRS", "Pan-STARRS1 DR1 3pi survey", 1.8,
            (_f("g", 0.481, "CDS/P/PanSTARRS/DR1/g"), _f("r", 0.617, "CDS/P/PanSTARRS/DR1/r"),
             _f("i", 0.752, "CDS/P/PanSTARRS/DR1/i"), _f("z", 0.866, "CDS/P/PanSTARRS/DR1/z"),
             _f("y", 0.962, "CDS/P/PanSTARRS/DR1/y")),
            0.25, 1.1, "partial", 0.75, "Dec > -30 deg, 30 000 deg2",
            aliases=("ps1", "pan-starrs", "panstarrs1", "pan-starrs1", "ps1dr1"),
            notes="Stacks at 0.25\"/px; FWHM ~1.0-1.3\" recalled (Chambers+2016).",
        ),
        Survey(
            "DECaLS", "DESI Legacy Imaging Surveys (DECaLS, DR10)", 4.0,
            (_f("g", 0.473, "CDS/P/DESI-Legacy-Surveys/DR10/g"),
             _f("r", 0.642, "CDS/P/DESI-Legacy-Surveys/DR10/r"),
             _f("i", 0.782, "CDS/P/DESI-Legacy-Surveys/DR10/i"),
             _f("z", 0.926, "CDS/P/DESI-Legacy-Surveys/DR10/z")),
            0.262, 1.25, "partial", 0.48, "~9 000 deg2 (DECaLS); >20 000 deg2 in DR10, Dec <= 32.4 deg",
            aliases=("legacysurvey", "legacy-surveys", "ls-dr10", "desi-ls"),
            notes="DECam on the 4 m Blanco (the seed's 0.1 m is wrong); FWHM ~1.2-1.3\" recalled.",
        ),
        Survey(
            "HSC", "Subaru Hyper Suprime-Cam SSP PDR2", 8.2,
            (_f("g", 0.477, "CDS/P/HSC/DR2/wide/g"), _f("r", 0.623, "CDS/P/HSC/DR2/wide/r"),
             _f("i", 0.775, "CDS/P/HSC/DR2/wide/i"), _f("z", 0.893), _f("y", 0.980)),
            0.168, 0.6, "partial", 0.027, "~1 100 deg2 partly covered, ~300 deg2 at full depth",
            aliases=("subaru", "hsc-ssp", "hscssp"),
            notes="z and y HiPS ids not found; 0.168\"/px recalled.",
        ),
        Survey(
            "HST", "Hubble Space Telescope (ACS/WFC, WFC3)", 2.4,
            (_f("B", 0.435, "CDS/P/HST/B"), _f("V", 0.555, "CDS/P/HST/V"),
             _f("I", 0.814, "CDS/P/HST/I")),
            0.05, 0.08, "pointed", 0.001, "pointed observations, a tiny fraction of the sky",
            aliases=("hubble", "acs", "wfc3"),
            notes="ACS/WFC 0.050\"/px; UVIS FWHM 0.06-0.09\".",
        ),
        Survey(
            "JWST", "James Webb Space Telescope (NIRCam)", 6.5,
            (_f("F115W", 1.15, "CDS/P/JWST/F115W"), _f("F150W", 1.50, "CDS/P/JWST/F150W"),
             _f("F200W", 2.00, "CDS/P/JWST/F200W"), _f("F444W", 4.44, "CDS/P/JWST/F444W")),
            0.0317, 0.07, "pointed", 0.0001, "pointed observations; per-filter maps cover only observed fields",
            aliases=("webb", "nircam"),
            notes="NIRCam SW 0.0317\"/px, LW 0.0648\"/px; FWHM 0.02-0.16\" by band.",
        ),
        Survey(
            "Spitzer", "Spitzer IRAC", 0.85,
            (_f("IRAC1", 3.6, "CDS/P/SPITZER/IRAC1"), _f("IRAC2", 4.5, "CDS/P/SPITZER/IRAC2"),
             _f("IRAC3", 5.8, "CDS/P/SPITZER/IRAC3"), _f("IRAC4", 8.0, "CDS/P/SPITZER/IRAC4")),
            1.2, 1.8, "partial", 0.05, "pointed and Legacy surveys (GLIMPSE, SAGE, SINGS)",
            aliases=("irac", "spitzer-irac", "spitzerirac", "sst"),
            notes="FWHM 1.66-1.98\" by channel (recalled, IRAC handbook); aperture recalled.",
        ),
        Survey(
            "TESS", "Transiting Exoplanet Survey Satellite", 0.105,
            (_f("T", 0.786, "CDS/P/TESS/2yr"),),
            21.0, 21.0, "partial", 0.85, "near all sky (~85 % in the prime mission)",
            aliases=(),
            notes="10.5 cm pupil; 50 % of the energy within ~1 px, so FWHM is taken as 1 px. "
                  "The HiPS is an FFI mosaic, useless for 2.5\" pairs.",
        ),
    ]
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


_ALIASES: dict[str, str] = {}
for _s in SURVEYS.values():
    for _a in (_s.name, *_s.aliases):
        _ALIASES[_key(_a)] = _s.name


def survey_names() -> list[str]:
    """Canonical names of all known surveys, in registry order."""
    return list(SURVEYS)


def get_survey(name: str | Survey) -> Survey:
    """Look a survey up by name or alias, case-insensitively.

    Raises
    ------
    UnknownSurveyError
        With the list of known surveys, when ``name`` matches none.
    """
    if isinstance(name, Survey):
        return name
    canonical = _ALIASES.get(_key(str(name)))
    if canonical is None:
        raise UnknownSurveyError(
            f"Unknown survey {name!r}; known surveys are {', '.join(SURVEYS)}."
        )
    return SURVEYS[canonical]


def parse_survey_list(text: str | list[str] | None) -> list[Survey]:
    """Parse ``"PanSTARRS,SDSS9,HST"`` (or a list) into surveys, keeping order, dropping repeats."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[Survey] = []
    for item in items:
        if item.strip():
            s = get_survey(item.strip())
            if s not in out:
                out.append(s)
    return out


def survey_rows() -> list[dict]:
    """The registry as rows for the ``surveys`` table."""
    rows = []
    for s in SURVEYS.values():
        rows.append(
            {
                "name": s.name,
                "title": s.title,
                "aperture_m": s.aperture_m,
                "bands": list(s.filter_names),
                "band_wavelengths_um": [f.wavelength_um for f in s.filters],
                "hips_ids": [f.hips_id for f in s.filters],
                "pixel_scale_arcsec": s.pixel_scale_arcsec,
                "fwhm_arcsec": s.fwhm_arcsec,
                "reference_wavelength_um": s.reference_wavelength_um,
                "diffraction_limit_arcsec": s.diffraction_limit_arcsec,
                "sky": s.sky,
                "sky_fraction": s.sky_fraction,
                "coverage": s.coverage,
                "aliases": list(s.aliases),
                "notes": s.notes,
            }
        )
    return rows


def sync_survey_table(catalog) -> int:
    """Write the registry into the catalogue's ``surveys`` table (insert or replace); returns the row count."""
    rows = survey_rows()
    cols = list(rows[0])
    placeholders = ", ".join("?" for _ in cols)
    with catalog.transaction() as con:
        con.executemany(
            f"insert or replace into surveys ({', '.join(cols)}) values ({placeholders})",
            [[r[c] for c in cols] for r in rows],
        )
    return len(rows)
