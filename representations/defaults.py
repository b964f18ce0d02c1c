"""The structure representation's defaults, in one place for every backend and caller:
white-box's superpixel count (SLIC ``n_segments`` / selective search's ``seg_num``) and the
backend the trainer, the grids and the style metrics use."""

SEG_NUM = 200
DEFAULT_METHOD = "fast"
