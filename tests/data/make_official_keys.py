"""Write ``official_keys.json.gz``: the key names and shapes of the authors' 20 classification models.

These are facts about the authors' released checkpoints, not code: for each timm factory
``unified_{halo,pvt,swin,convnext,dcn_v3}_{micro,tiny,small,base}`` of their STM-Evaluation code
(commit b62c471, timm 0.6.7), every entry of ``model.state_dict()`` with ``num_classes=1000``,
in registration order (``convnext`` is the paper's DW-Conv model, ``dcn_v3`` its U-InternImage).
A scalar has shape ``[]`` (BatchNorm's ``num_batches_tracked``). Swin's
``relative_position_index`` and ``attn_mask`` buffers are included as the authors saved them.

The released files hold this dict under ``model`` (training checkpoints also carry
``model_ema``, ``optimizer``, ``epoch``, ``scaler``, ``args``).

Input: a folder of ``unified_<stm>_<scale>.txt`` files, one ``<key><TAB><JSON shape>`` per line,
listed from the authors' models. Output (deterministic bytes, so a rewrite changes git only when
the facts change)::

    {"source": "...", "models": {"unified_halo_micro": [["downsample_layers.0.stem.0.weight",
                                                       [16, 3, 3, 3]], ...], ...}}

    python tests/data/make_official_keys.py KEY_LIST_DIR [--out tests/data/official_keys.json.gz]
"""
import argparse
import glob
import gzip
import json
import os.path as osp

SOURCE = ("model.state_dict() of the authors' timm factories unified_<stm>_<scale> "
          '(STM-Evaluation commit b62c471, timm 0.6.7, num_classes=1000); key -> shape')


def read_key_list(path):
    """``[(key, shape), ...]`` from one ``<key>\\t<JSON shape>`` file, in file order."""
    entries = []
    with open(path) as f:
        for line in f:
            if line.strip():
                key, shape = line.rstrip('\n').split('\t')
                entries.append([key, json.loads(shape)])
    return entries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('key_list_dir')
    parser.add_argument('--out', default=osp.join(osp.dirname(osp.abspath(__file__)),
                                                  'official_keys.json.gz'))
    args = parser.parse_args()
    paths = sorted(glob.glob(osp.join(args.key_list_dir, 'unified_*_*.txt')))
    if len(paths) != 20:
        raise SystemExit(f'error: expected 20 unified_<stm>_<scale>.txt files in '
                         f'{args.key_list_dir}, found {len(paths)}')
    models = {osp.splitext(osp.basename(p))[0]: read_key_list(p) for p in paths}
    text = json.dumps(dict(source=SOURCE, models=models), separators=(',', ':'))
    with open(args.out, 'wb') as raw, gzip.GzipFile(fileobj=raw, mode='wb', mtime=0,
                                                    filename='') as f:
        f.write(text.encode())
    print(f'wrote {args.out}: {len(models)} models, '
          f'{sum(len(v) for v in models.values())} keys')


if __name__ == '__main__':
    main()
