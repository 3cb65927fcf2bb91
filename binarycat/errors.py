"""Exceptions a user can cause.

Every error that bad input can trigger (a missing file, a corrupt FITS, an unknown survey,
bad SQL) is a `BinarycatError` whose message is one sentence; the CLI prints it and exits
non-zero without a traceback.
"""


class BinarycatError(Exception):
    """An error caused by input, with a message meant for the user."""


class CatalogVersionError(BinarycatError):
    """The catalogue was written by a newer binarycat than this one."""


class UnknownSurveyError(BinarycatError):
    """A survey name that the registry does not know."""


class BadFitsError(BinarycatError):
    """A FITS file that cannot be used as a stamp."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class QueryError(BinarycatError):
    """A query that DuckDB rejected, or one that tried to change a read-only catalogue."""


class LightCurveTooShortError(BinarycatError):
    """A light curve with no stretch between gaps long enough to preprocess."""

    def __init__(self, longest, min_segment, max_gap_days):
        self.longest = int(longest)
        self.min_segment = int(min_segment)
        self.max_gap_days = float(max_gap_days)
        super().__init__(
            f"The light curve is too short: its longest stretch without a gap over {self.max_gap_days:g} d "
            f"has {self.longest} good points, fewer than the {self.min_segment} needed.")
