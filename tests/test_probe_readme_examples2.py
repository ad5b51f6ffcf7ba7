"""README's --resume paragraph against the CLI: options left out of a resumed run are the
checkpoint's, except --epochs, --max-steps and --eval-freq, which take their defaults."""
import argparse
import json

from fastnn import cli


def _train(*args):
    assert cli.main(["train", "--dataset", "digits", "--no-progress", "--backend", "numpy",
                     "--hidden", "8", *args]) == 0


def test_resume_help_names_the_options_it_does_not_take_from_the_checkpoint():
    """The help said every option left out was the checkpoint's, as README did; a run cut
    short by --max-steps and resumed without it goes on to the default epochs."""
    parser = argparse.ArgumentParser()
    cli.configure_train(parser)
    text = next(a.help for a in parser._actions if a.dest == "resume")
    assert "left out are the checkpoint's" in text
    for flag in ("--epochs", "--max-steps", "--eval-freq"):
        assert flag in text, flag


def test_resume_without_max_steps_and_eval_freq_takes_their_defaults(tmp_path, capsys):
    _train("--max-steps", "3", "--eval-freq", "2", "--save", str(tmp_path / "a.npz"))
    _train("--resume", str(tmp_path / "a.npz"), "--epochs", "1",
           "--metrics", str(tmp_path / "m.json"))
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["config"]["max_steps"] is None and metrics["config"]["eval_freq"] is None
    assert metrics["steps"] == 12    # the whole first epoch: 1,438 digits in batches of 128
    assert metrics["config"]["hidden"] == [8]   # (the checkpoint's, given again)
    assert "step_curve" not in metrics or metrics["step_curve"]["step"] == [2]
