"""--auto-scale-lr: the learning rate follows the real total batch."""
import pytest

from .conftest import FASTER


@pytest.mark.parametrize('gpus,expected', [(1, 0.02 * 2 / 16), (8, 0.02)])
def test_auto_scale_lr_follows_the_real_batch(converted, torch_home, monkeypatch, gpus, expected):
    """--auto-scale-lr: lr = config lr x (GPUs x images per GPU) / base_batch_size, for 1 x 2 and 8 x 2 images."""
    from mammo_det.apis.runner import build_train_runner

    data, _ = converted
    home, _ = torch_home
    monkeypatch.setenv('TORCH_HOME', str(home))
    runner = build_train_runner(FASTER, work_dir=None, data_root=data, auto_scale_lr=True,
                                cfg_options={'train_dataloader.num_workers': 0,
                                             'train_dataloader.persistent_workers': False})
    monkeypatch.setattr(type(runner), 'world_size', property(lambda self: gpus))
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(wrapper, runner.auto_scale_lr)
    assert runner.cfg.train_dataloader.batch_size == 2
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(expected)


