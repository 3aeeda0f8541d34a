using System.Globalization;
using SafeTune.Safety.Critics;

namespace SafeTune.Training.FineTuning;

/// <summary>What holds a fine-tune near the frozen reference policy.</summary>
public enum Penalty
{
    /// <summary><c>(1 - beta) * SFT + beta * KL(pi_ref || pi_theta)</c> over the response tokens (the paper's objective).</summary>
    Kl,
    /// <summary><c>(1 - beta) * SFT</c> plus a proximal pull <c>beta * strength * (w - w_ref)</c> on the trained weights (Lisa-style).</summary>
    L2,
    /// <summary>Constrained SFT (Qi et al., ICLR 2025): a token-wise beta schedule on the log-ratio to the reference; ignores the risk.</summary>
    Constrained,
}

/// <summary>The safety side of a fine-tune: risk source, beta map, weighting and penalty.</summary>
public sealed record SafetyOptions
{
    /// <summary>
    /// Where the risk comes from: <c>none</c>, <c>probe:PROBE.json</c> (an activation probe; fused into the reference
    /// pass when it was trained on the model being fine-tuned) or <c>critic:SPEC</c> (a Safety Critic judge on each
    /// example's prompt and target response).
    /// </summary>
    public string Risk { get; init; } = "none";

    /// <summary>The risk-to-beta map (<see cref="global::SafeTune.Training.Risk.BetaMap.Parse"/>): <c>clamp</c>, <c>linear:a,b</c>, <c>ema:d</c>, <c>fixed:b</c>, <c>none</c>.</summary>
    public string BetaMap { get; init; } = "none";

    /// <summary>
    /// How a batch's example risks become beta: one beta per step from their mean (the paper) or max, or
    /// <see cref="JudgeAggregation.PerExample"/>: each example's own risk and beta weight its response tokens.
    /// </summary>
    public JudgeAggregation Aggregation { get; init; } = JudgeAggregation.Mean;

    /// <summary>The regularizer.</summary>
    public Penalty Penalty { get; init; } = Penalty.Kl;

    /// <summary>For <see cref="Penalty.L2"/>: the proximal strength per unit of beta (rho = beta * strength).</summary>
    public double PenaltyStrength { get; init; } = 1.0;

    /// <summary>
    /// For <see cref="Penalty.Constrained"/>: beta_t for the response's tokens t = 1, 2, ...; the last value holds for
    /// the rest. Default: Qi et al.'s 0.5 for the first token, 2 for tokens 2 to 5, 0.1 after.
    /// </summary>
    public IReadOnlyList<double> ConstrainedBetas { get; init; } = [0.5, 2, 2, 2, 2, 0.1];

    /// <summary>The kind of risk source named by <see cref="Risk"/>: <c>none</c>, <c>probe</c> or <c>critic</c>.</summary>
    public string RiskKind => Risk.Split(':', 2)[0].Trim().ToLowerInvariant();

    /// <summary>What follows the kind in <see cref="Risk"/> (a probe path or a judge spec).</summary>
    public string RiskArgument => Risk.Split(':', 2) is [_, var rest] ? rest : "";

    /// <summary>Beta for the constrained objective at response token <paramref name="t"/> (from 0).</summary>
    public double ConstrainedBeta(int t) => ConstrainedBetas[Math.Min(t, ConstrainedBetas.Count - 1)];

    /// <summary>Throws <see cref="ArgumentException"/> naming the option when the combination is not meaningful.</summary>
    public void Validate()
    {
        if (RiskKind is not ("none" or "probe" or "critic"))
            throw new ArgumentException($"--risk '{Risk}' is not one of none, probe:PROBE.json, critic:SPEC.");
        if (RiskKind is "probe" or "critic" && RiskArgument.Trim().Length == 0)
            throw new ArgumentException($"--risk '{Risk}' needs {(RiskKind == "probe" ? "a probe file" : "a judge spec")} after the colon.");
        var map = global::SafeTune.Training.Risk.BetaMap.Parse(BetaMap);
        if (!map.IgnoresRisk && RiskKind == "none")
            throw new ArgumentException($"--beta-map {map.Spec} maps a risk to beta, but --risk is none; give --risk probe:... or critic:..., or a fixed beta.");
        if (map.IsStateful && Aggregation == JudgeAggregation.PerExample)
            throw new ArgumentException($"--beta-map {map.Spec} smooths the batch risk over steps; it cannot weight each example (use --weighting batch).");
        if (!(PenaltyStrength >= 0) || double.IsInfinity(PenaltyStrength))
            throw new ArgumentException($"--penalty-strength must be 0 or more, not {PenaltyStrength.ToString(CultureInfo.InvariantCulture)}.");
        if (ConstrainedBetas.Count == 0 || ConstrainedBetas.Any(b => !(b > 0) || double.IsInfinity(b)))
            throw new ArgumentException("the constrained-SFT betas must be positive numbers.");
    }
}

/// <summary>The named methods a fine-tune can run: the paper's adaptive regularization and the baselines beside it.</summary>
public static class Methods
{
    /// <summary>The method names, in report order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["standard", "fixed-kl", "adaptive", "lisa", "constrained"];

    /// <summary>
    /// The safety options of a method: <c>standard</c> (beta = 0: plain SFT), <c>fixed-kl</c> (fixed beta 0.5),
    /// <c>adaptive</c> (the paper's clamp map on <paramref name="risk"/>), <c>lisa</c> (a Lisa-style proximal pull with
    /// fixed beta 0.5) and <c>constrained</c> (Qi et al.'s constrained SFT). <paramref name="risk"/> is required by
    /// <c>adaptive</c> and recorded (for logging) by the others.
    /// </summary>
    public static SafetyOptions Preset(string method, string risk = "none") => method.Trim().ToLowerInvariant() switch
    {
        "standard" => new SafetyOptions { Risk = risk, BetaMap = "none" },
        "fixed-kl" => new SafetyOptions { Risk = risk, BetaMap = "fixed:0.5" },
        "adaptive" => risk.Trim().Equals("none", StringComparison.OrdinalIgnoreCase)
            ? throw new ArgumentException("--method adaptive needs a risk source: --risk probe:PROBE.json or --risk critic:SPEC.")
            : new SafetyOptions { Risk = risk, BetaMap = "clamp" },
        "lisa" => new SafetyOptions { Risk = risk, BetaMap = "fixed:0.5", Penalty = Penalty.L2, PenaltyStrength = 1.0 },
        "constrained" => new SafetyOptions { Risk = risk, BetaMap = "none", Penalty = Penalty.Constrained },
        _ => throw new ArgumentException($"--method '{method}' is not one of {string.Join(", ", Names)}."),
    };
}
