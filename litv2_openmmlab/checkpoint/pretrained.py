"""Reading checkpoint files for the OpenMMLab backbone: local paths, URLs,
``open-mmlab://`` ... every scheme of mmengine, with the loaders of
:mod:`.weights_only`, which read them as data."""
from .weights_only import CheckpointError, load_checkpoint_safely


def read_checkpoint(filename: str) -> dict:
    """Load a checkpoint file or URL on CPU as data only (see
    weights_only.py), naming the file on failure: ``FileNotFoundError``,
    ``IsADirectoryError`` or a :class:`CheckpointError`, each one line."""
    try:
        checkpoint = load_checkpoint_safely(filename, map_location='cpu')
    except (OSError, CheckpointError):
        raise  # their messages name the file
    except Exception as err:  # torch raises many types; name the file.
        raise CheckpointError(
            f'could not read checkpoint {filename!r}: '
            f'{type(err).__name__}: {err}') from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'checkpoint {filename!r} holds a '
                              f'{type(checkpoint).__name__}, not a state '
                              'dict')
    return checkpoint
