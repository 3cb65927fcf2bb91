"""DuckDB schema of a catalogue and its migrations.

The schema version lives in the ``meta`` table. A catalogue written by a newer binarycat
(a higher version than `SCHEMA_VERSION`) is refused rather than silently misread; an older
one is brought up to date by running the `MIGRATIONS` after its version in order.
"""

from __future__ import annotations

SCHEMA_VERSION = 3

_V1 = """
CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS surveys (
    name                      VARCHAR PRIMARY KEY,
    title                     VARCHAR,
    aperture_m                DOUBLE,
    bands                     VARCHAR[],
    band_wavelengths_um       DOUBLE[],
    hips_ids                  VARCHAR[],
    pixel_scale_arcsec        DOUBLE,
    fwhm_arcsec               DOUBLE,
    reference_wavelength_um   DOUBLE,
    diffraction_limit_arcsec  DOUBLE,
    sky                       VARCHAR,
    sky_fraction              DOUBLE,
    coverage                  VARCHAR,
    aliases                   VARCHAR[],
    notes                     VARCHAR
);

CREATE TABLE IF NOT EXISTS sources (
    source_id   VARCHAR PRIMARY KEY,
    ra          DOUBLE NOT NULL,   -- ICRS, degrees
    dec         DOUBLE NOT NULL,   -- ICRS, degrees
    healpix     BIGINT NOT NULL,   -- nested HEALPix index at HEALPIX_ORDER
    origin      VARCHAR,           -- file or service the row came from
    properties  JSON,              -- every other column of the imported table
    imported_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS stamps (
    stamp_id           VARCHAR PRIMARY KEY, -- hash of (source_id, survey, content_hash)
    source_id          VARCHAR NOT NULL,
    survey             VARCHAR NOT NULL,
    content_hash       VARCHAR NOT NULL,    -- sha256 of dtype, shape and pixel bytes
    shard              VARCHAR NOT NULL,    -- Parquet file, relative to the catalogue directory
    shard_row          INTEGER NOT NULL,
    height             INTEGER NOT NULL,
    width              INTEGER NOT NULL,
    filters            VARCHAR[],           -- bands stacked into this stamp
    pixel_scale_arcsec DOUBLE,
    ra                 DOUBLE,              -- stamp centre, ICRS degrees
    dec                DOUBLE,
    healpix            BIGINT,
    origin             VARCHAR,             -- files or service it came from
    created_at         TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (source_id, survey, content_hash)
);

CREATE TABLE IF NOT EXISTS labels (
    source_id  VARCHAR NOT NULL,
    survey     VARCHAR NOT NULL,
    label      TINYINT NOT NULL CHECK (label IN (0, 1)),
    labeller   VARCHAR NOT NULL,     -- who or what gave it: a person, 'simulator', a file
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (source_id, survey, labeller)
);

CREATE TABLE IF NOT EXISTS models (
    model_id    VARCHAR PRIMARY KEY,
    kind        VARCHAR NOT NULL,    -- 'stamp_resnet34', ...
    surveys     VARCHAR[],
    params      JSON,
    split_seed  INTEGER,
    metrics     JSON,
    checkpoint  VARCHAR,             -- relative to the catalogue directory
    created_at  TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS splits (
    model_id  VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    split     VARCHAR NOT NULL CHECK (split IN ('train', 'validation', 'test')),
    PRIMARY KEY (model_id, source_id)
);

CREATE TABLE IF NOT EXISTS predictions (
    stamp_id   VARCHAR NOT NULL,
    model_id   VARCHAR NOT NULL,
    source_id  VARCHAR NOT NULL,
    survey     VARCHAR NOT NULL,
    p_binary   DOUBLE NOT NULL CHECK (p_binary BETWEEN 0 AND 1),
    flag       BOOLEAN NOT NULL,
    threshold  DOUBLE NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (stamp_id, model_id)
);

CREATE OR REPLACE VIEW latest_labels AS
SELECT source_id, survey, label, labeller, created_at
FROM labels
QUALIFY row_number() OVER (PARTITION BY source_id, survey ORDER BY created_at DESC, labeller) = 1;

CREATE OR REPLACE VIEW binary_flags AS
SELECT p.source_id, p.survey, s.ra, s.dec, p.flag, p.p_binary, p.model_id, p.stamp_id,
       p.created_at AS predicted_at
FROM predictions p
JOIN sources s USING (source_id)
QUALIFY row_number() OVER (PARTITION BY p.source_id, p.survey
                           ORDER BY p.created_at DESC, p.model_id DESC, p.stamp_id) = 1;
"""

_V2 = """
CREATE TABLE IF NOT EXISTS crossmatches (
    name         VARCHAR NOT NULL,   -- which external catalogue / match run
    source_id    VARCHAR NOT NULL,
    external_id  VARCHAR NOT NULL,
    ra           DOUBLE,             -- the catalogue source, ICRS degrees
    dec          DOUBLE,
    external_ra  DOUBLE,
    external_dec DOUBLE,
    sep_arcsec   DOUBLE NOT NULL
);

-- binary_flags became a table kept up to date by every prediction (a view over all
-- predictions costs a window over the whole history at every query)
DROP VIEW IF EXISTS binary_flags;
CREATE TABLE IF NOT EXISTS binary_flags (
    source_id    VARCHAR NOT NULL,
    survey       VARCHAR NOT NULL,
    ra           DOUBLE,
    dec          DOUBLE,
    flag         BOOLEAN NOT NULL,
    p_binary     DOUBLE NOT NULL,
    model_id     VARCHAR NOT NULL,
    stamp_id     VARCHAR NOT NULL,
    predicted_at TIMESTAMP,
    PRIMARY KEY (source_id, survey)
);
INSERT OR REPLACE INTO binary_flags
SELECT p.source_id, p.survey, s.ra, s.dec, p.flag, p.p_binary, p.model_id, p.stamp_id, p.created_at
FROM predictions p JOIN sources s USING (source_id)
QUALIFY row_number() OVER (PARTITION BY p.source_id, p.survey
                           ORDER BY p.created_at DESC, p.model_id DESC, p.stamp_id) = 1;

-- one row per source with predictions: the flags of binary_flags summed up, kept at write
-- time with binary_flags, so a query over candidates reads one row per source
CREATE TABLE IF NOT EXISTS source_flags (
    source_id        VARCHAR PRIMARY KEY,
    ra               DOUBLE,
    dec              DOUBLE,
    n_surveys        INTEGER NOT NULL,         -- surveys with a prediction
    n_surveys_binary INTEGER NOT NULL,         -- surveys whose latest prediction says binary
    binary_in        VARCHAR,                  -- those surveys, comma-separated, A-Z
    p_binary         MAP(VARCHAR, DOUBLE)      -- survey -> latest p_binary
);
INSERT OR REPLACE INTO source_flags
SELECT source_id, any_value(ra), any_value(dec), count(*), count(*) FILTER (WHERE flag),
       coalesce(array_to_string(list_sort(list(survey) FILTER (WHERE flag)), ','), ''),
       map_from_entries(list(struct_pack(k := survey, v := p_binary)))
FROM binary_flags GROUP BY source_id;

-- what a survey service answered about a source: covered or not (a blank cutout)
CREATE TABLE IF NOT EXISTS coverage (
    source_id  VARCHAR NOT NULL,
    survey     VARCHAR NOT NULL,
    covered    BOOLEAN NOT NULL,
    reason     VARCHAR,
    checked_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (source_id, survey)
);

-- cutouts that failed after the last retry; cleared when the source is fetched
CREATE TABLE IF NOT EXISTS fetch_failures (
    source_id VARCHAR NOT NULL,
    survey    VARCHAR NOT NULL,
    filter    VARCHAR NOT NULL,
    reason    VARCHAR NOT NULL,
    attempts  INTEGER NOT NULL,
    failed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (source_id, survey, filter)
);

CREATE TABLE IF NOT EXISTS crossmatch_runs (
    name          VARCHAR PRIMARY KEY,
    origin        VARCHAR,
    radius_arcsec DOUBLE NOT NULL,
    mode          VARCHAR NOT NULL,  -- 'all' or 'nearest'
    n_external    BIGINT,
    n_pairs       BIGINT,
    created_at    TIMESTAMP DEFAULT current_timestamp
);
"""


_V3 = """
-- one TESS sector of one target; the arrays (TIME, PDCSAP_FLUX, PDCSAP_FLUX_ERR, QUALITY)
-- live in lightcurves/hpx5=NNNNN/*.parquet like the stamps
CREATE TABLE IF NOT EXISTS lightcurves (
    lightcurve_id      VARCHAR PRIMARY KEY,  -- 'TIC<tic_id>-s<sector, 4 digits>'
    tic_id             BIGINT NOT NULL,
    sector             INTEGER NOT NULL,
    source_id          VARCHAR,              -- nearest catalogue source within the match radius
    match_sep_arcsec   DOUBLE,
    n_sources_in_pixel INTEGER,              -- catalogue sources within one TESS pixel (21")
    blended            BOOLEAN,              -- more than one: the flux is shared
    ra                 DOUBLE NOT NULL,      -- RA_OBJ, DEC_OBJ: ICRS degrees
    dec                DOUBLE NOT NULL,
    healpix            BIGINT NOT NULL,
    tessmag            DOUBLE,
    camera             INTEGER,
    ccd                INTEGER,
    n_points           INTEGER NOT NULL,
    n_good             INTEGER NOT NULL,     -- QUALITY == 0 with finite TIME and flux
    time_start         DOUBLE,               -- BTJD days
    time_stop          DOUBLE,
    content_hash       VARCHAR NOT NULL,     -- sha256 of the four arrays
    shard              VARCHAR NOT NULL,
    shard_row          INTEGER NOT NULL,
    origin             VARCHAR,
    created_at         TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (tic_id, sector)
);

-- eclipsing-binary labels are per star (TIC), whatever the sector
CREATE TABLE IF NOT EXISTS eb_labels (
    tic_id     BIGINT NOT NULL,
    label      TINYINT NOT NULL CHECK (label IN (0, 1)),
    kind       VARCHAR,                      -- EA, EB, EW, or what the star is instead
    labeller   VARCHAR NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (tic_id, labeller)
);

CREATE OR REPLACE VIEW latest_eb_labels AS
SELECT tic_id, label, kind, labeller, created_at
FROM eb_labels
QUALIFY row_number() OVER (PARTITION BY tic_id ORDER BY created_at DESC, labeller) = 1;

CREATE TABLE IF NOT EXISTS eb_splits (
    model_id VARCHAR NOT NULL,
    tic_id   BIGINT NOT NULL,
    split    VARCHAR NOT NULL CHECK (split IN ('train', 'validation', 'test')),
    PRIMARY KEY (model_id, tic_id)
);

-- CALNet inputs of a light curve, prepared once per recipe (binarycat.catalog.feature_store)
CREATE TABLE IF NOT EXISTS lightcurve_features (
    lightcurve_id    VARCHAR NOT NULL,
    recipe           VARCHAR NOT NULL,       -- preprocessing and periodogram version
    shard            VARCHAR NOT NULL,       -- features/<recipe>/<uuid>.parquet
    shard_row        INTEGER NOT NULL,
    best_period_days DOUBLE,
    created_at       TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (lightcurve_id, recipe)
);

CREATE TABLE IF NOT EXISTS eb_predictions (
    lightcurve_id    VARCHAR NOT NULL,
    model_id         VARCHAR NOT NULL,
    tic_id           BIGINT NOT NULL,
    sector           INTEGER NOT NULL,
    source_id        VARCHAR,
    p_binary         DOUBLE NOT NULL CHECK (p_binary BETWEEN 0 AND 1),  -- P(eclipsing binary)
    flag             BOOLEAN NOT NULL,
    threshold        DOUBLE NOT NULL,
    best_period_days DOUBLE,                 -- GLS peak
    created_at       TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (lightcurve_id, model_id)
);
"""

# MIGRATIONS[v] upgrades a catalogue from version v to v + 1.
MIGRATIONS: dict[int, str] = {1: _V2, 2: _V3}

CREATE_STATEMENTS = _V1 + _V2 + _V3
