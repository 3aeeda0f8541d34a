using System.Globalization;

namespace SafeTune.Runtime.Training;

/// <summary>
/// A loss that became NaN or infinite. The message names the step (1-based), the loss and, when checkpoints are kept,
/// the folder that holds the last good one.
/// </summary>
public sealed class TrainingDivergedException : Exception
{
    /// <summary>A divergence at 1-based <paramref name="step"/> of <paramref name="what"/> (<c>training</c>, <c>the judge's training</c>...).</summary>
    public TrainingDivergedException(long step, double loss, string what = "training", string? checkpointDirectory = null, long checkpointStep = 0)
        : base($"step {step}: the loss is {loss.ToString(CultureInfo.InvariantCulture)}; {what} stopped" +
            (checkpointDirectory is null ? "." : $" and the last good checkpoint (step {checkpointStep}) in {checkpointDirectory} is kept."))
    {
        Step = step;
        Loss = loss;
        CheckpointDirectory = checkpointDirectory;
    }

    /// <summary>The 1-based step whose loss diverged.</summary>
    public long Step { get; }

    /// <summary>The loss (NaN or infinite).</summary>
    public double Loss { get; }

    /// <summary>The folder that keeps the last good checkpoint; null without checkpoints.</summary>
    public string? CheckpointDirectory { get; }
}
