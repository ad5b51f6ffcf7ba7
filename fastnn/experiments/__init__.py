"""The course experiments as commands: multi-task network, VAE, class visualisation.

Each module has ``add_arguments(parser)`` and ``run(args) -> metrics dict``; the CLI
(``python -m fastnn multitask | vae | dream``) registers them.
"""
