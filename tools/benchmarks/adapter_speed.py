"""Adapter speed: the per-image conversion time of each dataset adapter against the VinDr-Mammo path, on synthetic
releases of about the same image size (about 2100 x 1700; mini-MIAS films are 1024 x 1024), in one process.

    python tools/benchmarks/adapter_speed.py [--images 8] [--max-size 2048] [--repeat 3]

For each format: parsing time per image (CSV / XML / tables), and the worker's time per image (read, masks for
CBIS-DDSM, preprocess, PNG), also per megapixel; the ratio to VinDr-Mammo's time per megapixel (target <= 1.1x:
an adapter adds nothing beyond parsing; CBIS-DDSM also reads each abnormality's mask, which the ratio includes).
Sets without a window in their files (CBIS-DDSM, INbreast, mini-MIAS) are compared with VinDr-Mammo converted
with the same percentile window ('vindr-pct'), so that the ratio shows the adapter, not the display transform.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

from data_converters import core  # noqa: E402
from data_converters.formats import adapter  # noqa: E402
from data_converters.worker import convert_image, init_worker  # noqa: E402


def _parse(fmt, root):
    """(records, parse seconds, the adapter's worker hook)."""
    mod = adapter(fmt)
    t = time.perf_counter()
    records = mod.read_release(root)
    return records, time.perf_counter() - t, getattr(mod, 'locate', None)


def _vindr(root, n):
    from data_converters.synth.vindr import write_dataset

    write_dataset(root, studies=max(n // 4, 1), seed=3, scale=0.6, progress=False)
    return _parse('vindr', root)


def _public(fmt, writer, **kw):
    def run(root, n):
        writer(root, **kw)
        return _parse(fmt, root)
    return run


def main():
    from data_converters.synth.cbis_ddsm import write_cbis_ddsm
    from data_converters.synth.embed import write_embed
    from data_converters.synth.inbreast import write_inbreast
    from data_converters.synth.mias import write_mias

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--images', type=int, default=8)
    ap.add_argument('--max-size', type=int, default=2048)
    ap.add_argument('--repeat', type=int, default=3, help='runs of each image; the fastest counts (load spikes)')
    args = ap.parse_args()
    n = args.images
    formats = [('vindr', _vindr), ('vindr-pct', _vindr),
               ('cbis-ddsm', _public('cbis-ddsm', write_cbis_ddsm, patients=max(n // 2, 2), scale=0.46)),
               ('inbreast', _public('inbreast', write_inbreast, patients=max(n // 4, 1), scale=0.52)),
               ('embed', _public('embed', write_embed, patients=max(n // 4, 1), scale=0.52)),
               ('mias', _public('mias', write_mias, films=n))]
    init_worker()
    opts = core.ConvertOptions(max_size=args.max_size, workers=1, progress=False)
    bases = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, make in formats:
            root = os.path.join(tmp, fmt)
            records, parse_s, locate = make(root, n)
            # 'vindr-pct': VinDr-Mammo with the percentile window, the display transform of the sets whose files
            # carry no window (CBIS-DDSM, INbreast, mini-MIAS): their baseline.
            fopts = core.ConvertOptions(max_size=args.max_size, voi='percentile') if fmt == 'vindr-pct' else opts
            _, tasks = core.plan_tasks(os.path.join(tmp, f'{fmt}-out'), records, fopts, {}, locate)
            tasks = tasks[:n]
            convert_image(tasks[0])  # warm-up: imports, first-call costs
            times, mpix = [], []
            for task in tasks:
                runs = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    res = convert_image(task)
                    runs.append(time.perf_counter() - t)
                times.append(min(runs))
                assert 'error' not in res, res
                tr = res['transform']
                mpix.append(tr['orig_width'] * tr['orig_height'] / 1e6)
            per_img = statistics.median(times)
            per_mp = statistics.median(t / m for t, m in zip(times, mpix))
            bases[fmt] = per_mp
            ref = 'vindr-pct' if res['voi'].startswith('percentile') and fmt != 'vindr-pct' else 'vindr'
            print(f'{fmt:10s} parse {parse_s / len(records) * 1000:6.2f} ms/img | convert {per_img * 1000:7.1f} ms/img '
                  f'({statistics.median(mpix):.2f} MP) = {per_mp * 1000:6.1f} ms/MP -> {per_mp / bases[ref]:.2f}x '
                  f'{ref} with the same display transform (target <= 1.1x)')


if __name__ == '__main__':
    main()
