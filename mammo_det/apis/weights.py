"""Pretrained checkpoints the configs name: found in the torch hub cache, downloaded into it, or a clear error.

The configs name their ImageNet backbones by URL; ``torchvision://`` and ``open-mmlab://`` names (zoo configs, the
detectors ``BiradsDetector`` wraps) are resolved to theirs (:mod:`mammo_det.zoo`). MMEngine loads an http(s)
checkpoint from ``$TORCH_HOME/hub/checkpoints/<file name>`` when it is there and downloads it otherwise, so a compute
node without internet needs the files put there once, from a login node: ``mammo-det weights CONFIG...
[--cache-dir DIR]``. Training checks this before anything is built (:func:`ensure_weights`). No torch import here:
the command runs where torch is not even installed.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from typing import Iterable, List, Optional
from urllib.parse import urlparse

from mammo_det.errors import UserError
from mammo_det.fileio import atomic_path
from mammo_det.zoo import pretrained_inits, resolve_url

# torch.hub's rule: the part of the file name after the last '-' and before the extension is a sha256 prefix.
HASH_RE = re.compile(r'-([a-f0-9]{6,})\.')
URL_SCHEMES = ('http://', 'https://')
# Schemes MMEngine resolves through other packages (torchvision, mmpretrain...): not downloadable here.
INDIRECT_SCHEMES = ('torchvision://', 'open-mmlab://', 'openmmlab://', 'mmcls://', 'mmpretrain://', 'modelzoo://')


class WeightsError(UserError, RuntimeError):
    """A checkpoint a config needs is neither cached nor downloadable; the message says what to run."""


def hub_checkpoint_dir(cache_dir: Optional[str] = None) -> str:
    """Where MMEngine (through torch.hub's rules) looks for downloaded checkpoints."""
    if cache_dir:
        return os.path.join(os.path.abspath(os.path.expanduser(cache_dir)), 'hub', 'checkpoints')
    torch_home = os.path.expanduser(os.getenv('TORCH_HOME', os.path.join(os.getenv('XDG_CACHE_HOME', '~/.cache'),
                                                                         'torch')))
    return os.path.join(torch_home, 'hub', 'checkpoints')


def config_checkpoints(cfg) -> List[str]:
    """Every checkpoint a config loads at start: ``init_cfg.checkpoint`` anywhere in the model (a wrapped zoo model
    included), and ``load_from``; schemes resolved to their URLs."""
    found = [resolve_url(item['checkpoint']) for item in pretrained_inits(cfg.get('model', {}))]
    if isinstance(cfg.get('load_from'), str):
        found.append(cfg['load_from'])
    return list(dict.fromkeys(found))


def cached_path(url: str, cache_dir: Optional[str] = None) -> str:
    return os.path.join(hub_checkpoint_dir(cache_dir), os.path.basename(urlparse(url).path))


def download(url: str, cache_dir: Optional[str] = None, timeout: float = 60.0, progress: bool = True) -> str:
    """Downloads ``url`` into the checkpoint cache, atomically, checking the sha256 prefix its file name carries.

    Raises:
        WeightsError: the download failed or the file does not match its name's hash prefix (nothing is left).
    """
    from tqdm import tqdm

    dest = cached_path(url, cache_dir)
    name = os.path.basename(dest)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, atomic_path(dest) as tmp:
            total = int(resp.headers.get('Content-Length') or 0) or None
            sha = hashlib.sha256()
            with open(tmp, 'wb') as fh, tqdm(total=total, unit='B', unit_scale=True, desc=name,
                                             disable=not progress) as bar:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    fh.write(chunk)
                    sha.update(chunk)
                    bar.update(len(chunk))
            m = HASH_RE.search(name)
            if m and not sha.hexdigest().startswith(m.group(1)):
                raise WeightsError(f'{url}: the downloaded file has sha256 {sha.hexdigest()[:16]}..., its name says '
                                   f'{m.group(1)}...: corrupt or changed download, not kept')
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, 'reason', exc)
        raise WeightsError(f'{url}: download failed ({reason})') from None
    return dest


def fetch(urls: Iterable[str], cache_dir: Optional[str] = None, progress: bool = True) -> List[dict]:
    """Each URL cached or downloaded; returns [{url, path, status}] with status 'cached' or 'downloaded'."""
    out = []
    for url in map(resolve_url, urls):
        if url.startswith(INDIRECT_SCHEMES):
            raise WeightsError(f'{url}: this scheme needs another package to resolve (or names no known model); '
                               'name the checkpoint by its http(s) URL in the config')
        if not url.startswith(URL_SCHEMES):
            continue  # a local file: nothing to fetch
        path = cached_path(url, cache_dir)
        status = 'cached'
        if not os.path.exists(path):
            download(url, cache_dir, progress=progress)
            status = 'downloaded'
        out.append(dict(url=url, path=path, status=status))
    return out


def ensure_weights(cfg, config_name: str = 'CONFIG') -> None:
    """Before training: every URL checkpoint of ``cfg`` is cached, or is downloaded now, or training stops with
    the file, its URL and the command that fills the cache on a machine with internet."""
    for url in config_checkpoints(cfg):
        if not url.startswith(URL_SCHEMES + INDIRECT_SCHEMES):
            if not os.path.exists(url):
                raise WeightsError(f'{config_name}: checkpoint {url} does not exist')
            continue
        try:
            fetch([url], progress=False)
        except WeightsError as exc:
            raise WeightsError(
                f'{config_name} needs the pretrained weights {os.path.basename(urlparse(url).path)} from {url}, '
                f'which are not in {hub_checkpoint_dir()} and cannot be downloaded ({exc}). On a machine with '
                f'internet run: mammo-det weights {config_name} [--cache-dir DIR], then copy DIR here and set '
                'TORCH_HOME=DIR (or run it with the TORCH_HOME this job uses).') from None

