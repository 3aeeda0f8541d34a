using System.Globalization;
using System.Text.Json.Nodes;
using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.Training.Risk;

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
    /// Where the risk comes from: none, an activation probe (fused into the reference pass when it was trained on the
    /// model being fine-tuned) or a Safety Critic judge on each example's prompt and target response.
    /// </summary>
    public RiskSpec Risk { get; init; } = new RiskSpec.None();

    /// <summary>The risk-to-beta map (<see cref="global::SafeTune.Training.Risk.BetaMap.Parse"/>); each run starts its own copy.</summary>
    public BetaMap BetaMap { get; init; } = BetaMap.None;

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

    /// <summary>Beta for the constrained objective at response token <paramref name="t"/> (from 0).</summary>
    public double ConstrainedBeta(int t) => ConstrainedBetas[Math.Min(t, ConstrainedBetas.Count - 1)];

    /// <summary>
    /// The settings as a run's <c>options.json</c> records them: the risk and beta map specs as given (so a run recorded
    /// before they were parsed resumes against the same text), then <paramref name="riskSource"/>, the built source's name.
    /// </summary>
    public JsonObject Record(string? riskSource) => new()
    {
        ["risk"] = Risk.Spec, ["risk_source"] = riskSource, ["beta_map"] = BetaMap.Text,
        ["weighting"] = Aggregation == JudgeAggregation.PerExample ? "example" : "batch",
        ["aggregation"] = Aggregation == JudgeAggregation.Max ? "max" : "mean", // per example: the logged batch risk is the mean
        ["penalty"] = Penalty.ToString().ToLowerInvariant(), ["penalty_strength"] = PenaltyStrength,
    };

    /// <summary>Throws <see cref="OptionException"/> naming the option when the combination is not meaningful.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Risk);
        ArgumentNullException.ThrowIfNull(BetaMap);
        if (!BetaMap.IgnoresRisk && Risk is RiskSpec.None)
            throw new OptionException("beta-map", $"{{beta-map}} {BetaMap.Spec} maps a risk to beta, but {{risk}} is none; give {{risk}} probe:... or critic:..., or a fixed beta.");
        if (BetaMap.IsStateful && Aggregation == JudgeAggregation.PerExample)
            throw new OptionException("beta-map", $"{{beta-map}} {BetaMap.Spec} smooths the batch risk over steps; it cannot weight each example (use {{weighting}} batch).");
        if (!(PenaltyStrength >= 0) || double.IsInfinity(PenaltyStrength))
            throw new OptionException("penalty-strength", $"{{penalty-strength}} must be 0 or more, not {PenaltyStrength.ToString(CultureInfo.InvariantCulture)}.");
        if (ConstrainedBetas.Count == 0 || ConstrainedBetas.Any(b => !(b > 0) || double.IsInfinity(b)))
            throw new UserInputException("the constrained-SFT betas must be positive numbers.");
    }
}

/// <summary>The named methods a fine-tune can run: the paper's adaptive regularization and the baselines beside it.</summary>
public static class Methods
{
    /// <summary>The method names, in report order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["standard", "fixed-kl", "adaptive", "lisa", "constrained"];

    /// <summary>
    /// SafeTune's default adaptive setting: each example's own risk s in [0, 1] mapped by a ramp, beta 0.1 up to s = 0.25,
    /// 1 from s = 0.75, linear between (<see cref="AdaptiveBetaMap"/> with <see cref="AdaptiveAggregation"/>), so benign
    /// examples in a batch keep nine tenths of their SFT signal while clearly harmful ones are held entirely to the
    /// reference: their targets teach nothing. (A judge scores a compliant reply to a harmful request about 0.9, not 1;
    /// beta = s would still let a tenth of its SFT gradient through.) The floor of 0.1 is the light pull toward the
    /// reference that harmless data needs too: on the demo, fine-tuning on a benign task alone raises ASR by about 4
    /// points, and the floor keeps that within 3 at the whole task gain. The paper's exact setting is
    /// <see cref="PaperBetaMap"/> with <see cref="PaperAggregation"/> (one beta per batch from the mean judge score).
    /// </summary>
    public const string AdaptiveBetaMap = "ramp:0.25,0.75,0.1,1";

    /// <summary>The weighting of SafeTune's default adaptive setting: per example.</summary>
    public const JudgeAggregation AdaptiveAggregation = JudgeAggregation.PerExample;

    /// <summary>The paper's beta map: <c>clamp((r - 2) / 3, 0.1, 0.9)</c> of the judge score r.</summary>
    public const string PaperBetaMap = "clamp";

    /// <summary>The paper's weighting: one beta per batch, from the batch's mean risk.</summary>
    public const JudgeAggregation PaperAggregation = JudgeAggregation.Mean;

    /// <summary>
    /// The safety options of a method: <c>standard</c> (beta = 0: plain SFT), <c>fixed-kl</c> (fixed beta 0.5),
    /// <c>adaptive</c> (SafeTune's default: <see cref="AdaptiveBetaMap"/> on each example's <paramref name="risk"/>,
    /// weighted per example; <c>betaMap</c> <see cref="PaperBetaMap"/> with batch weighting is the paper's exact setting),
    /// <c>lisa</c> (a Lisa-style proximal pull with
    /// fixed beta 0.5) and <c>constrained</c> (Qi et al.'s constrained SFT), with the overrides given. The risk spec
    /// (<see cref="RiskSpec.Parse"/>) is required by <c>adaptive</c> and recorded (for logging) by the others; the beta
    /// map spec, when given, replaces the preset's (<see cref="BetaMap.Parse"/>). Every spec is parsed here, once.
    /// </summary>
    public static SafetyOptions Preset(string method, string risk = "none", string? betaMap = null, JudgeAggregation? aggregation = null,
        Penalty? penalty = null, double? penaltyStrength = null)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(risk);
        var name = method.Trim().ToLowerInvariant();
        if (!Names.Contains(name)) throw new OptionException("method", $"{{method}} '{method}' is not one of {string.Join(", ", Names)}.");
        var spec = RiskSpec.Parse(risk);
        if (name == "adaptive" && spec is RiskSpec.None)
            throw new OptionException("method", "{method} adaptive needs a risk source: {risk} probe:PROBE.json or {risk} critic:SPEC.");
        var safety = name switch
        {
            "standard" => new SafetyOptions { Risk = spec, BetaMap = BetaMap.None },
            "fixed-kl" => new SafetyOptions { Risk = spec, BetaMap = BetaMap.Parse("fixed:0.5") },
            "adaptive" => new SafetyOptions { Risk = spec, BetaMap = BetaMap.Parse(AdaptiveBetaMap), Aggregation = AdaptiveAggregation },
            "lisa" => new SafetyOptions { Risk = spec, BetaMap = BetaMap.Parse("fixed:0.5"), Penalty = Penalty.L2, PenaltyStrength = 1.0 },
            _ => new SafetyOptions { Risk = spec, BetaMap = BetaMap.None, Penalty = Penalty.Constrained },
        };
        var map = betaMap is null ? safety.BetaMap : BetaMap.Parse(betaMap);
        return safety with
        {
            BetaMap = map,
            // A map that smooths the batch risk over steps cannot weight each example: without a weighting given, it gets one beta per batch.
            Aggregation = aggregation ?? (map.IsStateful ? JudgeAggregation.Mean : safety.Aggregation),
            Penalty = penalty ?? safety.Penalty,
            PenaltyStrength = penaltyStrength ?? safety.PenaltyStrength,
        };
    }
}
