using SafeTune.Safety.Critics;

namespace SafeTune.Training.Risk;

/// <summary>
/// Turns a step's example risks into betas through a <see cref="BetaMap"/>: one beta for the batch, from the mean or
/// max of its risks, or (<see cref="JudgeAggregation.PerExample"/>) one per example, the step's beta being their mean.
/// </summary>
internal sealed class BetaPolicy(BetaMap map, JudgeAggregation aggregation)
{
    /// <summary>The risk-to-beta map (and its state).</summary>
    public BetaMap Map { get; } = map;

    /// <summary>
    /// The batch risk (the max under <see cref="JudgeAggregation.Max"/>, else the mean; null without risks), the step's beta
    /// and, per example, each example's beta, for <paramref name="exampleRisks"/> (null without a risk source: the map
    /// reads risk 0). Stateful maps update.
    /// </summary>
    public (double? BatchRisk, double Beta, double[]? ExampleBetas) Next(double[]? exampleRisks)
    {
        if (exampleRisks is null) return (null, Map.Next(0), null);
        double batchRisk = aggregation == JudgeAggregation.Max ? exampleRisks.Max() : exampleRisks.Average();
        if (aggregation != JudgeAggregation.PerExample) return (batchRisk, Map.Next(batchRisk), null);
        double[] betas = [.. exampleRisks.Select(Map.Next)];
        return (batchRisk, betas.Average(), betas);
    }
}
