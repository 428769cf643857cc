"""The base of the errors a user can act on: the command line prints their message and exits with status 2."""


class UserError(Exception):
    """Bad input or a request that cannot be met; the message names the file, row, field or option and what is
    wrong. Subclasses: ``ConversionError``, ``EvaluationInputError``, ``DicomError``, ``BenchmarkError``,
    ``WeightsError``, ``ThresholdError``, ``SetupError``, ``FusionError``."""
