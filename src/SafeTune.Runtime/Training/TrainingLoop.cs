using System.Diagnostics;

namespace SafeTune.Runtime.Training;

/// <summary>Options of <see cref="TrainingLoop.Run"/>.</summary>
internal sealed record TrainingLoopOptions
{
    /// <summary>Optimizer steps in total: the loop runs from the session's step up to this count.</summary>
    public required long Steps { get; init; }
    /// <summary>The learning rate of each step (0-based).</summary>
    public required ILearningRateSchedule Schedule { get; init; }
    /// <summary>Clip the global gradient norm to this value before each optimizer step; null does not clip.</summary>
    public double? ClipNorm { get; init; }
    /// <summary>What trains, as the divergence message names it (<c>training</c> by default).</summary>
    public string What { get; init; } = "training";
    /// <summary>The checkpoint folder the divergence message names as kept; null when there is none.</summary>
    public string? CheckpointDirectory { get; init; }
}

/// <summary>One step the loop took, as the per-step hook sees it.</summary>
/// <param name="Step">The 0-based index of the step (the session's step is now one more).</param>
/// <param name="Loss">The step's loss, computed before the update.</param>
/// <param name="LearningRate">The learning rate of the update.</param>
/// <param name="GradientNorm">The global gradient norm before clipping; null without clipping.</param>
/// <param name="Milliseconds">The step's wall-clock time (schedule to optimizer).</param>
/// <param name="Losses">The losses of this run's steps so far, this one included.</param>
internal readonly record struct LoopStep(long Step, double Loss, double LearningRate, double? GradientNorm, double Milliseconds, IReadOnlyList<double> Losses);

/// <summary>What <see cref="TrainingLoop.Run"/> did.</summary>
/// <param name="Losses">The loss of each step taken, computed before that step's update.</param>
/// <param name="Milliseconds">The wall-clock time of each step taken.</param>
/// <param name="FirstStep">The 0-based index of the first step (non-zero when the session was restored).</param>
/// <param name="Cancelled">True when the loop stopped early because it was cancelled (after a complete step).</param>
internal sealed record TrainingLoopResult(IReadOnlyList<double> Losses, IReadOnlyList<double> Milliseconds, long FirstStep, bool Cancelled);

/// <summary>
/// The training loop of every trainer: for each step from the session's step up to <see cref="TrainingLoopOptions.Steps"/>:
/// cancellation -> learning rate from the schedule -> lazy gradient reset -> the caller's forward/backward (any number of
/// micro-batches, reference passes, risk) -> divergence check -> clipping -> optimizer step -> the caller's per-step hook
/// (log, progress, evaluation, checkpoint).
/// </summary>
internal static class TrainingLoop
{
    /// <summary>
    /// Runs the loop. <paramref name="forwardBackward"/> gets the 0-based step and returns its loss, with the gradients
    /// accumulated in the session; <paramref name="afterStep"/> runs after the optimizer step. Cancellation stops before a
    /// step; a NaN or infinite loss throws <see cref="TrainingDivergedException"/> before the update.
    /// </summary>
    public static TrainingLoopResult Run(TrainingSession session, TrainingLoopOptions options, Func<long, double> forwardBackward,
        Action<LoopStep>? afterStep = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(forwardBackward);
        long first = session.Step;
        var losses = new List<double>();
        var times = new List<double>();
        for (long step = first; step < options.Steps; step++)
        {
            if (cancellation.IsCancellationRequested) return new TrainingLoopResult(losses, times, first, Cancelled: true);
            var sw = Stopwatch.StartNew();
            session.SetLearningRate(options.Schedule.At(step));
            session.LazyResetGrad();
            double loss = forwardBackward(step);
            if (!double.IsFinite(loss)) throw new TrainingDivergedException(step + 1, loss, options.What, options.CheckpointDirectory, session.Step);
            double? norm = options.ClipNorm is { } clip ? session.ClipGradNorm(clip) : null;
            double lr = session.LearningRate;
            session.OptimizerStep();
            times.Add(sw.Elapsed.TotalMilliseconds);
            losses.Add(loss);
            afterStep?.Invoke(new LoopStep(step, loss, lr, norm, times[^1], losses));
        }
        return new TrainingLoopResult(losses, times, first, Cancelled: false);
    }
}
