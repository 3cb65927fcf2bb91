"""Matplotlib figures of the report and the labelling page (Agg backend, no pyplot state).

Every figure is drawn on a `matplotlib.figure.Figure` with its own Agg canvas, never through
``pyplot``, so nothing global is touched and figures can be drawn from worker processes or
web-server threads.

Display stretch
---------------
Stamps are stacked signal-to-noise maps: background near 0, a primary that may peak at
thousands of sigma, a companion perhaps at 5 sigma. `display_norm` maps them with
astropy.visualization's `AsinhStretch` between ``median - 1 sigma`` and the peak, with the
asinh softening set to 3 sigma of the noise (sigma from the median absolute deviation): linear
over the noise, logarithmic over the core, so a companion at a few sigma next to a bright
primary stays visible. It is the same rule the classifier's input normalisation uses.

Speed
-----
`MosaicRenderer` keeps one figure per panel count and one peak-plot figure and only swaps
their data between candidates, which with small thumbnails makes a mosaic several times
cheaper than a fresh ``plt.figure`` / ``savefig`` per image (``benchmarks/bench_report.py``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
from astropy.visualization import AsinhStretch, ImageNormalize  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402
from scipy import ndimage  # noqa: E402

__all__ = [
    "CMAP",
    "BINARY_RADIUS_ARCSEC",
    "StampPanel",
    "Peak",
    "MosaicRenderer",
    "noise_level",
    "display_norm",
    "stamp_png",
    "find_peaks",
    "render_confusion",
    "render_reliability",
    "render_sky",
    "reliability_curve",
]

CMAP = "magma"
BINARY_RADIUS_ARCSEC = 2.5  # the science definition of a visual pair
PEAK_SNR = 5.0  # a local maximum this many sigma above the background is a peak
FIELD_ARCSEC = 7.0  # mosaics and peak plots show the central 7": the 2.5" ring with room around it
CONTOUR_SNR = (3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_BG = "#111111"


@dataclass
class StampPanel:
    """One survey's stamp of a source, with what the catalogue says about it.

    Attributes
    ----------
    survey : str
        Survey name, shown above the panel.
    data : ndarray
        The stacked stamp.
    pixel_scale_arcsec : float or None
        Pixel scale of ``data``; without it the axes are in pixels.
    fwhm_arcsec : float or None
        The survey's PSF FWHM, drawn as a circle for scale.
    p_binary : float or None
        The model's latest probability that the stamp shows a resolved pair.
    flag : bool or None
        The latest binary flag.
    label : int or None
        The latest label (1 binary, 0 not), if any.
    """

    survey: str
    data: np.ndarray
    pixel_scale_arcsec: float | None = None
    fwhm_arcsec: float | None = None
    p_binary: float | None = None
    flag: bool | None = None
    label: int | None = None

    @property
    def scale(self) -> float:
        return float(self.pixel_scale_arcsec) if self.pixel_scale_arcsec else 1.0

    def extent(self) -> tuple[float, float, float, float]:
        """Image extent in arcsec (pixels without a scale), centred on the stamp centre."""
        h, w = self.data.shape
        hx, hy = w * self.scale / 2.0, h * self.scale / 2.0
        return (-hx, hx, -hy, hy)

    def cropped(self, field_arcsec: float | None) -> "StampPanel":
        """The central ``field_arcsec`` square of the stamp (the whole stamp when it is smaller)."""
        if not field_arcsec or not self.pixel_scale_arcsec:
            return self
        n = max(3, int(round(field_arcsec / self.scale)))
        h, w = self.data.shape
        if n >= min(h, w):
            return self
        if (h - n) % 2:  # keep the stamp centre on the same pixel (or pixel corner)
            n += 1
        top, left = (h - n) // 2, (w - n) // 2
        return StampPanel(self.survey, self.data[top : top + n, left : left + n], self.pixel_scale_arcsec,
                          self.fwhm_arcsec, self.p_binary, self.flag, self.label)

    def caption(self) -> str:
        parts = [self.survey]
        if self.p_binary is not None:
            parts.append(f"p={self.p_binary:.2f}")
        if self.label is not None:
            parts.append("label " + ("bin" if self.label else "not"))
        return "  ".join(parts)


@dataclass(frozen=True)
class Peak:
    """A local maximum of a stamp: offset from the centre (arcsec, x east-left as stored) and S/N."""

    x: float
    y: float
    snr: float


def noise_level(data: np.ndarray) -> tuple[float, float]:
    """Robust background and noise of a stamp: (median, 1.4826 x MAD), NaNs ignored."""
    x = np.asarray(data, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0, 1.0
    med = float(np.median(x))
    sigma = 1.4826 * float(np.median(np.abs(x - med)))
    if not sigma > 0:
        sigma = float(np.std(x)) or 1.0
    return med, sigma


def display_norm(data: np.ndarray) -> ImageNormalize:
    """Noise-scaled asinh normalisation of a stamp (see the module docstring)."""
    med, sigma = noise_level(data)
    finite = np.isfinite(data)
    vmax = float(np.max(data[finite])) if finite.any() else med + sigma
    vmin = med - sigma
    if vmax <= vmin:
        vmax = vmin + 1.0
    a = float(np.clip(3.0 * sigma / (vmax - vmin), 1e-4, 1.0))
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(a=a), clip=True)


def _clean(data: np.ndarray) -> np.ndarray:
    x = np.asarray(data, dtype=np.float32)
    if not np.isfinite(x).all():
        med = noise_level(x)[0]
        x = np.where(np.isfinite(x), x, med)
    return x


def stamp_png(data: np.ndarray, *, cmap: str = CMAP) -> bytes:
    """A stamp as PNG bytes, one image pixel per stamp pixel, on the display stretch.

    North is up (row 0 at the bottom, as FITS stores it); the browser scales it up.
    """
    from matplotlib import colormaps
    from matplotlib.image import imsave

    x = _clean(data)
    rgba = colormaps[cmap](np.asarray(display_norm(x)(x).filled(0.0)), bytes=True)
    buf = io.BytesIO()
    imsave(buf, rgba[::-1], format="png")
    return buf.getvalue()


def find_peaks(panel: StampPanel, snr: float = PEAK_SNR) -> list[Peak]:
    """Local maxima of a stamp at least ``snr`` sigma above the background, brightest first.

    The stamp is smoothed with a Gaussian of a quarter of the PSF FWHM (in pixels) and a
    maximum must be the largest value in a box of about half the FWHM, so noise spikes and
    the wings of one star do not count as two.
    """
    x = _clean(panel.data).astype(np.float64)
    med, sigma = noise_level(x)
    fwhm_pix = (panel.fwhm_arcsec / panel.scale) if (panel.fwhm_arcsec and panel.pixel_scale_arcsec) else 2.0
    smooth = ndimage.gaussian_filter(x - med, max(fwhm_pix / 4.0 / 2.3548, 0.0)) if fwhm_pix > 2 else x - med
    size = max(3, int(round(fwhm_pix / 2.0)) | 1)
    local = ndimage.maximum_filter(smooth, size=size, mode="nearest")
    ys, xs = np.nonzero((smooth == local) & (smooth >= snr * sigma))
    h, w = x.shape
    peaks = [Peak(float((xi - (w - 1) / 2.0) * panel.scale), float((yi - (h - 1) / 2.0) * panel.scale),
                  float(smooth[yi, xi] / sigma)) for yi, xi in zip(ys, xs)]
    return sorted(peaks, key=lambda p: -p.snr)


def peak_summary(peaks: list[Peak], radius: float = BINARY_RADIUS_ARCSEC) -> str:
    """One line: how many peaks lie within ``radius`` of the brightest, and the nearest's distance."""
    if not peaks:
        return "no peak"
    p0 = peaks[0]
    near = [(float(np.hypot(p.x - p0.x, p.y - p0.y)), p) for p in peaks[1:]]
    near = sorted(((d, p) for d, p in near if d <= radius), key=lambda t: t[0])
    if not near:
        return "1 peak"
    return f"{len(near) + 1} peaks, {near[0][0]:.2f}\""


class MosaicRenderer:
    """Draws candidate mosaics and 2-D peak plots, reusing one figure per layout.

    Parameters
    ----------
    panel_inches : float
        Size of one stamp panel.
    dpi : int
        Resolution of the PNGs (thumbnails: 60-100).
    cmap : str
        Colormap of the stamps.
    """

    def __init__(self, panel_inches: float = 1.45, dpi: int = 80, cmap: str = CMAP,
                 field_arcsec: float | None = FIELD_ARCSEC):
        self.panel_inches = panel_inches
        self.field_arcsec = field_arcsec
        self.dpi = dpi
        self.cmap = cmap
        self._mosaics: dict[int, tuple] = {}
        self._peak = None

    # -- mosaics ---------------------------------------------------------------------------
    def _mosaic_figure(self, n: int):
        """The figure of ``n`` panels and a snapshot of its static parts (background, grey frames)."""
        if n in self._mosaics:
            return self._mosaics[n]
        p = self.panel_inches
        fig = Figure(figsize=(p * n, p + 0.42), dpi=self.dpi, facecolor=_BG)
        canvas = FigureCanvasAgg(fig)
        title = fig.text(0.01, 0.985, "", color="white", fontsize=8, va="top", ha="left", weight="bold",
                         animated=True)
        panels = []
        top = p / (p + 0.42)
        for i in range(n):
            ax = fig.add_axes((i / n + 0.01 / n, 0.02, 0.98 / n, top - 0.12 / (p + 0.42)))
            ax.set_facecolor("black")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("#555555")
            im = ax.imshow(np.zeros((2, 2)), origin="lower", cmap=self.cmap, interpolation="antialiased",
                           animated=True)
            psf = Circle((0, 0), 1, fill=False, color="#6fd3ff", lw=1.0, animated=True)
            ring = Circle((0, 0), BINARY_RADIUS_ARCSEC, fill=False, color="white", lw=0.6, ls=(0, (2, 2)),
                          animated=True)
            ax.add_patch(psf)
            ax.add_patch(ring)
            cap = ax.set_title(" ", color="white", fontsize=6.5, pad=2)
            cap.set_animated(True)
            panels.append((ax, im, psf, ring, cap))
        canvas.draw()
        self._mosaics[n] = (fig, title, panels, canvas.copy_from_bbox(fig.bbox))
        return self._mosaics[n]

    def mosaic(self, panels: list[StampPanel], path: str | Path, *, title: str = "") -> Path:
        """One PNG with each survey's stamp side by side, PSF circle and 2.5" ring drawn.

        The PSF FWHM is the blue circle in the lower-left corner; the dashed ring is the 2.5"
        radius of the binary definition; the caption gives survey, ``p_binary`` and label, in
        red with a red frame where the survey flags a binary. Only the stamps, circles, texts
        and red frames are drawn per mosaic, onto a snapshot of the rest (blitting).
        """
        if not panels:
            raise ValueError("a mosaic needs at least one stamp")
        fig, title_artist, slots, background = self._mosaic_figure(len(panels))
        fig.canvas.restore_region(background)
        title_artist.set_text(title)
        fig.draw_artist(title_artist)
        for panel, (ax, im, psf, ring, cap) in zip(panels, slots):
            panel = panel.cropped(self.field_arcsec)
            x = _clean(panel.data)
            im.set_data(x)
            im.set_norm(display_norm(x))
            ext = panel.extent()
            im.set_extent(ext)
            ax.set_xlim(ext[0], ext[1])
            ax.set_ylim(ext[2], ext[3])
            ax.draw_artist(im)
            half = min(ext[1], ext[3])
            if panel.fwhm_arcsec and panel.pixel_scale_arcsec and panel.fwhm_arcsec / 2.0 < half:
                r = panel.fwhm_arcsec / 2.0
                margin = 0.08 * half + r
                psf.set_radius(r)
                psf.center = (ext[0] + margin, ext[2] + margin)
                ax.draw_artist(psf)
            if panel.pixel_scale_arcsec and BINARY_RADIUS_ARCSEC < half * 1.2:
                ax.draw_artist(ring)
            cap.set_text(panel.caption())
            cap.set_color("#ff6b6b" if panel.flag else "white")
            ax.draw_artist(cap)
            if panel.flag:
                for spine in ax.spines.values():
                    spine.set_color("#ff6b6b")
                    ax.draw_artist(spine)
                    spine.set_color("#555555")
        path = Path(path)
        _save_rgba(np.asarray(fig.canvas.buffer_rgba()), path)
        return path

    # -- 2-D peak plots --------------------------------------------------------------------
    def _peak_figure(self):
        """The peak-plot figure and a snapshot of its static parts (axes, ticks, labels) to blit onto."""
        if self._peak is None:
            fig = Figure(figsize=(2.1, 2.1), dpi=self.dpi, facecolor="white")
            canvas = FigureCanvasAgg(fig)
            ax = fig.add_axes((0.2, 0.17, 0.76, 0.7))
            ax.tick_params(labelsize=6, length=2)
            ax.set_xlabel("\u0394x (arcsec)", fontsize=6, labelpad=1)
            ax.set_ylabel("\u0394y (arcsec)", fontsize=6, labelpad=1)
            ax.set_aspect("equal")
            half = (self.field_arcsec or 2 * BINARY_RADIUS_ARCSEC + 2.0) / 2.0
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
            title = fig.text(0.58, 0.975, "", ha="center", va="top", fontsize=7, animated=True)
            canvas.draw()
            self._peak = (fig, ax, title, half, canvas.copy_from_bbox(fig.bbox))
        return self._peak

    def peak_plot(self, panel: StampPanel, path: str | Path) -> Path:
        """A 2-D peak plot of one stamp: S/N contours, peaks marked, PSF and 2.5" ring drawn.

        Contours of the lightly smoothed stamp are drawn at 3, 5, 10, 20, 50, ... sigma above
        the background, so a faint companion gets its own closed contours; peaks at least
        5 sigma above the background are crosses, the brightest a star; the title counts the
        peaks within 2.5" of the brightest and gives the nearest one's distance.

        The axes, ticks and labels are drawn once; each plot restores that snapshot and draws
        only its own contours, markers and title on it (blitting), which is what makes a
        thousand of them cheap.
        """
        fig, ax, title, half, background = self._peak_figure()
        panel = panel.cropped(self.field_arcsec)
        peaks = find_peaks(panel)
        x = _clean(panel.data).astype(np.float64)
        scale = panel.scale
        f = int(np.ceil(max(x.shape) / 96)) if max(x.shape) > 96 else 1
        if f > 1:  # contours of a 140-px HST field: block-average first
            h, w = (x.shape[0] // f) * f, (x.shape[1] // f) * f
            x = x[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
            scale *= f
        med, sigma = noise_level(x)
        fwhm_pix = panel.fwhm_arcsec / scale if (panel.fwhm_arcsec and panel.pixel_scale_arcsec) else 2.0
        snr = (ndimage.gaussian_filter(x, fwhm_pix / 4.0 / 2.3548) if fwhm_pix > 2 else x) - med
        snr /= sigma
        h, w = snr.shape
        ext = (-w * scale / 2, w * scale / 2, -h * scale / 2, h * scale / 2)
        cx = ext[0] + (np.arange(w) + 0.5) * scale
        cy = ext[2] + (np.arange(h) + 0.5) * scale
        artists = []
        levels = [v for v in CONTOUR_SNR if v < snr.max()]
        if len(levels) >= 1 and min(h, w) >= 2:
            colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(CONTOUR_SNR)))
            artists.append(ax.contour(cx, cy, snr, levels=levels, colors=colours[: len(levels)], linewidths=0.6))
        if peaks:
            artists += ax.plot([p.x for p in peaks[1:]], [p.y for p in peaks[1:]], "x", color="#d62728", ms=5,
                               mew=1.2)
            artists += ax.plot([peaks[0].x], [peaks[0].y], "*", color="#d62728", ms=7)
            artists.append(ax.add_patch(Circle((peaks[0].x, peaks[0].y), BINARY_RADIUS_ARCSEC, fill=False, ls="--",
                                               lw=0.6, color="0.4")))
        # in arcsec the stamp is cut to about the box (a pixel more is clipped); without a scale it is in pixels
        fits_box = bool(panel.pixel_scale_arcsec) or max(abs(v) for v in ext) <= half
        lim = half if fits_box else max(abs(v) for v in ext)
        if panel.fwhm_arcsec and panel.pixel_scale_arcsec:
            r = panel.fwhm_arcsec / 2.0
            margin = 0.08 * lim + r
            artists.append(ax.add_patch(Circle((-lim + margin, -lim + margin), r, fill=False, color="#1f77b4",
                                               lw=0.8)))
        title.set_text(f"{panel.survey}: {peak_summary(peaks)}")
        canvas = fig.canvas
        if fits_box:
            canvas.restore_region(background)
            for artist in artists:
                ax.draw_artist(artist)
            fig.draw_artist(title)
        else:  # a stamp without a pixel scale, in pixels: draw it all, then put the limits back
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            title.set_animated(False)
            canvas.draw()
            title.set_animated(True)
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
        path = Path(path)
        _save_rgba(np.asarray(canvas.buffer_rgba()), path)
        for artist in artists:
            artist.remove()
        if not fits_box:
            title.set_text("")
            canvas.draw()
            self._peak = (fig, ax, title, half, canvas.copy_from_bbox(fig.bbox))
        return path


def _save_rgba(rgba: np.ndarray, path: Path) -> None:
    from matplotlib.image import imsave

    imsave(path, rgba, format="png")


# -- whole-catalogue figures ---------------------------------------------------------------
def _fig(w: float, h: float, dpi: int = 100):
    fig = Figure(figsize=(w, h), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def render_confusion(matrix, path: str | Path, *, title: str = "Confusion matrix (test split)") -> Path:
    """A 2 x 2 confusion matrix (rows true, columns predicted) with counts and row fractions."""
    m = np.asarray(matrix, dtype=float)
    fig = _fig(3.4, 3.0)
    ax = fig.add_axes((0.28, 0.2, 0.62, 0.62))
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    names = ["not binary", "binary"]
    ax.set_xticks([0, 1], names, fontsize=8)
    ax.set_yticks([0, 1], names, fontsize=8)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true (label)", fontsize=8)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{int(m[i, j])}\n{frac[i, j]:.0%}", ha="center", va="center", fontsize=9,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.savefig(path)
    return Path(path)


def reliability_curve(p, y, n_bins: int = 10):
    """Binned calibration: (bin centres, mean predicted p, observed binary fraction, counts).

    Bins are equal-width over [0, 1]; empty bins are NaN.
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=n_bins) / counts
        frac = np.bincount(idx, weights=y, minlength=n_bins) / counts
    return (edges[:-1] + edges[1:]) / 2, mean_p, frac, counts


def render_reliability(p, y, path: str | Path, *, n_bins: int = 10, title: str = "Reliability (test split)") -> Path:
    """Reliability diagram: observed binary fraction against mean ``p_binary`` per bin, with counts."""
    _, mean_p, frac, counts = reliability_curve(p, y, n_bins)
    fig = _fig(3.4, 3.0)
    ax = fig.add_axes((0.18, 0.17, 0.76, 0.7))
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8, label="perfect")
    ok = counts > 0
    ax.plot(mean_p[ok], frac[ok], "o-", color="#d62728", ms=4, lw=1.2, label="model")
    for mp, fr, c in zip(mean_p[ok], frac[ok], counts[ok]):
        ax.annotate(str(int(c)), (mp, fr), textcoords="offset points", xytext=(3, -9), fontsize=6, color="0.3")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("mean predicted p_binary", fontsize=8)
    ax.set_ylabel("fraction labelled binary", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    fig.savefig(path)
    return Path(path)


def render_sky(ra, dec, cand_ra, cand_dec, path: str | Path, *, max_points: int = 50_000) -> Path:
    """Sky map of the catalogue (points, or a density image beyond ``max_points``) with candidates.

    RA increases to the left, as on the sky.
    """
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    fig = _fig(6.0, 4.2)
    ax = fig.add_axes((0.12, 0.12, 0.84, 0.8))
    if ra.size > max_points:
        h, xe, ye = np.histogram2d(ra, dec, bins=(300, 200))
        ax.imshow(np.log1p(h.T), origin="lower", extent=(xe[0], xe[-1], ye[0], ye[-1]), aspect="auto",
                  cmap="Greys", interpolation="nearest")
    elif ra.size:
        size = float(np.clip(3000.0 / ra.size, 1.5, 10.0))
        ax.scatter(ra, dec, s=size, color="0.55", lw=0, label=f"sources ({ra.size})", rasterized=True)
    if len(cand_ra):
        size = float(np.clip(6000.0 / len(cand_ra), 4.0, 16.0))
        ax.scatter(cand_ra, cand_dec, s=size, color="#d62728", lw=0, label=f"candidates ({len(cand_ra)})")
    if ra.size:
        lo, hi = np.nanmin(ra), np.nanmax(ra)
        pad = max(hi - lo, 1e-3) * 0.03
        ax.set_xlim(hi + pad, lo - pad)
    ax.set_xlabel("RA (deg)", fontsize=8)
    ax.set_ylabel("Dec (deg)", fontsize=8)
    ax.tick_params(labelsize=7)
    if ra.size or len(cand_ra):
        ax.legend(fontsize=7, loc="upper right", markerscale=2)
    ax.set_title("Catalogue sources and binary candidates", fontsize=9)
    fig.savefig(path)
    return Path(path)


def render_eclipsing(time, flux, periods, power, best_period: float, path: str | Path, *,
                     title: str = "") -> Path:
    """Light curve, GLS periodogram, and the curve folded at the peak period and at the
    multiple of it that folds best.

    An eclipsing binary's highest periodogram peak is often a harmonic of its orbit: half the
    period for two equal eclipses per orbit, a quarter or less for narrow eclipses. The second
    fold is at the multiple (2 to 4 times the peak) with the least phase dispersion
    (`fold_multiple`), the one that shows unequal primary and secondary eclipses.
    """
    time, flux = np.asarray(time, float), np.asarray(flux, float)
    fig = _fig(10.0, 2.3, dpi=80)
    axes = [fig.add_axes((0.05 + 0.245 * i, 0.22, 0.2, 0.62)) for i in range(4)]
    style = dict(s=0.6, c="#333333", linewidths=0, rasterized=True)
    axes[0].scatter(time, flux, **style)
    axes[0].set_xlabel("BTJD (d)", fontsize=7)
    axes[0].set_ylabel("flux / median", fontsize=7)
    axes[1].plot(periods, power, lw=0.7, color="#1f4e9a")
    axes[1].set_xscale("log")
    axes[1].axvline(best_period, color="#c0392b", lw=0.8, ls="--")
    axes[1].set_xlabel("period (d)", fontsize=7)
    axes[1].set_title(f"GLS peak {best_period:.4g} d", fontsize=8)
    k = max(2, fold_multiple(time, flux, best_period))
    for ax, p in ((axes[2], best_period), (axes[3], k * best_period)):
        t0 = time[np.argmin(flux)] if flux.size else 0.0
        ax.scatter(((time - t0) / p + 0.25) % 1.0 - 0.25, flux, **style)
        ax.set_xlabel("phase", fontsize=7)
        ax.set_title(f"folded at {p:.4g} d", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9, x=0.05, ha="left")
    fig.savefig(path)
    return Path(path)


def fold_multiple(time, flux, period: float, multiples=(1, 2, 3, 4), n_bins: int = 50) -> int:
    """The smallest multiple of ``period`` whose fold has a phase dispersion within 5 % of the
    least (phase dispersion: the mean variance of the flux in ``n_bins`` phase bins)."""
    time, flux = np.asarray(time, float), np.asarray(flux, float)
    if flux.size < 2 * n_bins or not period > 0:
        return multiples[0]
    scores = []
    for k in multiples:
        bins = np.floor(((time - time[0]) / (k * period) % 1.0) * n_bins).astype(int)
        count = np.bincount(bins, minlength=n_bins)
        mean = np.bincount(bins, flux, n_bins) / np.maximum(count, 1)
        scores.append(float(np.sum((flux - mean[bins]) ** 2) / flux.size))
    best = min(scores)
    return next(k for k, v in zip(multiples, scores) if v <= 1.05 * best)
