import pytest

from binarycat.errors import UnknownSurveyError
from binarycat.ingest.surveys import SURVEYS, get_survey, parse_survey_list, sync_survey_table

EXPECTED = {"2MASS", "ZTF", "NEOWISER", "unWISE", "SkyMapper", "SDSS9", "PanSTARRS", "DECaLS", "HSC",
            "HST", "JWST", "Spitzer", "TESS"}


def test_registry_has_every_survey_of_the_reference():
    assert set(SURVEYS) == EXPECTED


@pytest.mark.parametrize("alias,name", [
    ("PanSTARRS", "PanSTARRS"), ("Pan-STARRS", "PanSTARRS"), ("ps1", "PanSTARRS"), ("PS1", "PanSTARRS"),
    ("SDSS9", "SDSS9"), ("sdss", "SDSS9"), ("2mass", "2MASS"), ("hst", "HST"), ("Hubble", "HST"),
    ("unwise", "unWISE"), ("neowise", "NEOWISER"), ("decals", "DECaLS"), ("spitzer_irac", "Spitzer"),
])
def test_aliases_case_insensitive(alias, name):
    assert get_survey(alias).name == name


def test_unknown_survey_lists_the_known_ones():
    with pytest.raises(UnknownSurveyError) as err:
        get_survey("Gaia")
    msg = str(err.value)
    assert "Gaia" in msg and all(name in msg for name in EXPECTED)


def test_decals_aperture_is_the_blanco_4m_not_the_seed_value():
    assert get_survey("DECaLS").aperture_m == 4.0


def test_diffraction_limit_follows_rayleigh():
    hst = get_survey("HST")
    # 1.22 * 0.555e-6 / 2.4 rad = 0.0582"
    assert hst.diffraction_limit_at(0.555) == pytest.approx(1.22 * 0.555e-6 / 2.4 * 206264.806, rel=1e-6)
    for s in SURVEYS.values():  # an Airy core's FWHM is 1.03 lambda/D: no PSF is sharper
        assert s.fwhm_arcsec >= s.diffraction_limit_arcsec * 1.03 / 1.22 * 0.95, s.name


def test_resolution_ordering_matches_the_seed_figures():
    assert not get_survey("2MASS").resolves(2.0)
    assert get_survey("PanSTARRS").resolves(2.0)
    assert get_survey("HST").resolves(0.2)


def test_parse_survey_list_dedupes_and_keeps_order():
    assert [s.name for s in parse_survey_list("ps1, HST,PanSTARRS")] == ["PanSTARRS", "HST"]


def test_survey_table_is_written_from_the_registry(catalog):
    assert sync_survey_table(catalog) == len(SURVEYS)
    sync_survey_table(catalog)
    rows = dict(catalog.sql("select name, aperture_m from surveys").fetchall())
    assert rows == {s.name: s.aperture_m for s in SURVEYS.values()}
    bands = catalog.sql("select bands, hips_ids from surveys where name = 'PanSTARRS'").fetchone()
    assert bands[0] == ["g", "r", "i", "z", "y"] and bands[1][0] == "CDS/P/PanSTARRS/DR1/g"
