"""Parameters and MACs (the paper's "FLOPs") of one or all models, next to the paper's Table IV.

    python tools/analysis_tools/get_flops.py configs/_base_/models/u_halo_tiny.py [--input-size 224]
    python tools/analysis_tools/get_flops.py --all          # the 20 models vs Table IV
    python tools/analysis_tools/get_flops.py --table7       # local-attention variants vs Table VII
"""
import os
import os.path as osp

from mmengine.config import Config

from stm_mm.analysis.complexity import complexity, halo_unused_table_macs
from stm_mm.analysis.paper import TABLE_IV, TABLE_VII
from stm_mm.apis import init_model
from stm_mm.engine.cli import run_cli
from stm_mm.models import SCALES, STM_NAMES
from stm_mm.models.mixers import mixer_spec
from stm_mm.tool_args import ToolArgumentParser, add_input_size

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def build(config):
    """The classifier of a classification config, the backbone of a detection config."""
    cfg = Config.fromfile(config)
    part = 'model' if cfg.model.get('type', '').endswith('ImageClassifier') else 'backbone'
    return init_model(cfg, part=part)


def parse_args(argv=None):
    parser = ToolArgumentParser(__doc__)
    parser.add_argument('config', nargs='?', help='model config (classifier or detector)')
    add_input_size(parser)
    parser.add_argument('--all', action='store_true', help='all 20 models against Table IV')
    parser.add_argument('--table7', action='store_true',
                        help='the local-attention variants against Table VII')
    args = parser.parse_args(argv)
    if not (args.all or args.table7 or args.config):
        parser.error('give a CONFIG, --all or --table7')
    return args


def run(args):
    os.environ.setdefault('STM_MM_DCNV3_IMPL', 'pytorch')  # traceable DCNv3 sampling
    shape = (1, 3, *args.input_size)
    if args.table7:
        print_table7(shape)
        return
    if not args.all:
        model = build(args.config)
        r = complexity(model, shape)
        print(f'input {shape}')
        for key, value in r.items():
            print(f'{key:>18}: {value / 1e6:12.3f} M' if key.startswith('params') else
                  f'{key:>18}: {value / 1e9:12.4f} GMACs')
        return
    header = (f'{"model":<16}{"params":>12}{"hook-style":>12}{"paper":>7} | {"conv+lin":>9}'
              f'{"attn":>8}{"LN":>7}{"total":>8}{"local":>8}{"paper":>7}  convention (diff)')
    print(header)
    print('-' * len(header))
    for scale in SCALES:
        for stm in STM_NAMES:
            model = build(osp.join(ROOT, f'configs/_base_/models/u_{stm}_{scale}.py'))
            r = complexity(model, shape)
            p_params, p_flops, _ = TABLE_IV[(stm, scale)]
            convention = mixer_spec(stm).flops  # Table IV's convention for this mixer
            diff = r[convention] / 1e9 - p_flops
            name = f'u_{stm}_{scale}'
            print(f'{name:<16}{r["params"]:>12,}{r["params_hook_style"]:>12,}'
                  f'{p_params:>7} | {(r["conv"] + r["linear"]) / 1e9:>9.3f}'
                  f'{r["attention"] / 1e9:>8.3f}{r["layer_norm"] / 1e9:>7.3f}'
                  f'{r["total"] / 1e9:>8.3f}{r["paper_local"] / 1e9:>8.3f}{p_flops:>7.2f}  '
                  f'{convention} ({diff:+.3f})')
    print('\nGMACs at 224x224. total = conv + linear + attention products + LayerNorm (5/elem) + '
          'BatchNorm + pooling (fvcore style); local = conv + linear + LayerNorm at 2/elem; '
          'hook-style params leave out layer scales, PVT position embeddings and Swin bias '
          'tables. DCNv3 sampling is not in either total.')


def print_table7(shape):
    paths = {'u_swin_small': 'configs/_base_/models/u_swin_small.py',
             'u_halo_small': 'configs/_base_/models/u_halo_small.py'}
    for variant in ('switch', '1px', 'shift'):
        paths[f'u_halo_small_{variant}'] = f'configs/cls/ablation/u_halo_small_{variant}_in1k.py'
    print(f'{"model":<22}{"total":>8}{"c+l+attn":>10}{"attn":>8}{"used":>8}{"local":>8}'
          f'{"paper":>8}  (GMACs)')
    for name, path in paths.items():
        model = build(osp.join(ROOT, path))
        r = complexity(model, shape)
        macs = r['conv'] + r['linear'] + r['attention']
        used = macs - halo_unused_table_macs(model, shape)
        print(f'{name:<22}{r["total"] / 1e9:>8.3f}{macs / 1e9:>10.3f}{r["attention"] / 1e9:>8.3f}'
              f'{used / 1e9:>8.3f}{r["paper_local"] / 1e9:>8.3f}{TABLE_VII[name][0]:>8.2f}')
    print('total = conv + linear + attention products + norms (fvcore style); c+l+attn leaves '
          'the norms out; used = c+l+attn without the relative-position table rows Halo scores '
          'but never uses (it scores all 2w-1 rows, like the authors\' code). The paper\'s '
          'Table VII Halo rows equal "used" (its U-Swin row the total), unlike its Table IV Halo '
          'rows, which leave the attention products out.')


def main(argv=None):
    run_cli(run, parse_args(argv))


if __name__ == '__main__':
    main()
