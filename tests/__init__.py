import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))  # the repository (its configs, tools)
