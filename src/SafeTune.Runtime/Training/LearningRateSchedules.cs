namespace SafeTune.Runtime.Training;

/// <summary>A learning rate as a function of the optimizer step (0-based).</summary>
public interface ILearningRateSchedule
{
    /// <summary>The learning rate for step <paramref name="step"/>.</summary>
    double At(long step);
}

/// <summary>A constant learning rate.</summary>
internal sealed record ConstantSchedule(double LearningRate) : ILearningRateSchedule
{
    /// <inheritdoc/>
    public double At(long step) => LearningRate;
}

/// <summary>Linear warm-up from lr/warmup to lr over <see cref="WarmupSteps"/> steps, then constant.</summary>
public sealed record LinearWarmupSchedule(double LearningRate, long WarmupSteps) : ILearningRateSchedule
{
    /// <inheritdoc/>
    public double At(long step) => step < WarmupSteps ? LearningRate * (step + 1) / WarmupSteps : LearningRate;
}

/// <summary>
/// Linear warm-up over <see cref="WarmupSteps"/> steps, then cosine decay from lr to <see cref="MinLearningRate"/> at
/// <see cref="TotalSteps"/>: <c>lr * (step+1)/warmup</c> during warm-up, then
/// <c>min + (lr - min) * 0.5 * (1 + cos(pi * (step - warmup) / (total - warmup)))</c>.
/// </summary>
public sealed record CosineSchedule(double LearningRate, long WarmupSteps, long TotalSteps, double MinLearningRate = 0) : ILearningRateSchedule
{
    /// <inheritdoc/>
    public double At(long step)
    {
        if (step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
        long span = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Min(1.0, (double)(step - WarmupSteps) / span);
        return MinLearningRate + (LearningRate - MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
