using System.Globalization;
using System.Text.Json.Nodes;
using SafeTune.Onnx;

namespace SafeTune.Training.Risk;

/// <summary>
/// Turns a risk into the regularization weight beta of <c>(1 - beta) * SFT + beta * KL(pi_ref || pi_theta)</c>.
/// A risk is a number s in [0, 1]: a probe's harm probability, or a judge score r in [1, 5] as s = (r - 1) / 4.
/// Maps are small state machines (<see cref="EmaBetaMap"/> remembers the smoothed risk); their state is saved in
/// checkpoints so that a resumed run continues exactly.
/// </summary>
public abstract class BetaMap
{
    /// <summary>The spec this map was parsed from, e.g. <c>clamp</c> or <c>linear:0.1,0.9</c>.</summary>
    public abstract string Spec { get; }

    /// <summary>The spec as given to <see cref="Parse"/> (else <see cref="Spec"/>); a run records it as it is, so a resume compares the same text.</summary>
    public string Text => _text ?? Spec;

    private protected string? _text;

    /// <summary>Beta = 0 for every risk: standard fine-tuning.</summary>
    public static BetaMap None { get; } = Parse("none");

    /// <summary>The map in its starting state, for a new run: a stateless map is itself.</summary>
    public virtual BetaMap Start() => this;

    /// <summary>True when the map keeps state between calls (and so cannot weight each example on its own).</summary>
    public virtual bool IsStateful => false;

    /// <summary>True when beta never depends on the risk (fixed beta, or none).</summary>
    public virtual bool IgnoresRisk => false;

    /// <summary>Beta for the next batch (or example) of risk <paramref name="risk"/>, in [0, 1]. Stateful maps update.</summary>
    public abstract double Next(double risk);

    /// <summary>Beta for <paramref name="risk"/> without updating any state.</summary>
    public abstract double Peek(double risk);

    /// <summary>The state to checkpoint (null for stateless maps).</summary>
    public virtual JsonNode? SaveState() => null;

    /// <summary>Restores state written by <see cref="SaveState"/>.</summary>
    public virtual void RestoreState(JsonNode? state) { }

    /// <summary>
    /// Parses a map: <c>clamp</c> (the paper's <c>clamp((r - 2) / 3, 0.1, 0.9)</c>), <c>linear:BMIN,BMAX</c>,
    /// <c>ramp:LOW,HIGH</c> (beta 0 up to risk LOW, 1 from risk HIGH, linear between) or <c>ramp:LOW,HIGH,BMIN,BMAX</c>
    /// (beta BMIN up to risk LOW, BMAX from risk HIGH),
    /// <c>ema:DECAY</c> or <c>ema:DECAY,BMIN,BMAX</c> (linear on an exponential moving average of the risk),
    /// <c>fixed:BETA</c>, or <c>none</c> (beta = 0: standard fine-tuning).
    /// </summary>
    /// <exception cref="OptionException">The spec is not one of these, or a number is out of range; the message says which.</exception>
    public static BetaMap Parse(string spec)
    {
        BetaMap map;
        try { map = Create(spec); }
        catch (UserInputException e) when (e is not OptionException) { throw new OptionException("beta-map", e.Message, e); }
        map._text = spec;
        return map;
    }

    private static BetaMap Create(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var text = spec.Trim();
        var colon = text.IndexOf(':');
        var kind = (colon < 0 ? text : text[..colon]).ToLowerInvariant();
        var args = colon < 0 ? [] : text[(colon + 1)..].Split(',', StringSplitOptions.TrimEntries);
        double Arg(int i, string what)
        {
            if (i >= args.Length || !double.TryParse(args[i], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
                throw new OptionException("beta-map", $"{{beta-map}} '{spec}': {what} is missing or not a number.");
            return v;
        }
        void Count(params int[] allowed)
        {
            if (!allowed.Contains(args.Length))
                throw new OptionException("beta-map", $"{{beta-map}} '{spec}': {kind} takes {string.Join(" or ", allowed)} number(s), got {args.Length}.");
        }
        switch (kind)
        {
            case "clamp": Count(0); return new ClampBetaMap();
            case "none": Count(0); return new FixedBetaMap(0);
            case "fixed": Count(1); return new FixedBetaMap(Arg(0, "beta"));
            case "linear": Count(2); return new LinearBetaMap(Arg(0, "beta_min"), Arg(1, "beta_max"));
            case "ramp":
                Count(2, 4);
                return args.Length == 2 ? new RampBetaMap(Arg(0, "risk_low"), Arg(1, "risk_high"))
                    : new RampBetaMap(Arg(0, "risk_low"), Arg(1, "risk_high"), Arg(2, "beta_min"), Arg(3, "beta_max"));
            case "ema":
                Count(1, 3);
                return args.Length == 1 ? new EmaBetaMap(Arg(0, "decay")) : new EmaBetaMap(Arg(0, "decay"), Arg(1, "beta_min"), Arg(2, "beta_max"));
            default:
                throw new OptionException("beta-map", $"{{beta-map}} '{spec}' is not one of clamp, linear:BMIN,BMAX, ramp:LOW,HIGH[,BMIN,BMAX], ema:DECAY[,BMIN,BMAX], fixed:BETA, none.");
        }
    }

    /// <summary>Checks that a beta lies in [0, 1].</summary>
    protected static double CheckBeta(double beta, string what) =>
        beta is >= 0 and <= 1 ? beta : throw new UserInputException($"{what} must lie in [0, 1], not {beta.ToString(CultureInfo.InvariantCulture)}.");

    /// <summary>Checks that a risk lies in [0, 1] and is a number.</summary>
    protected static double CheckRisk(double risk) =>
        risk is >= 0 and <= 1 ? risk : throw new ArgumentOutOfRangeException(nameof(risk), $"a risk must lie in [0, 1], not {risk}.");

    /// <inheritdoc/>
    public override string ToString() => Spec;
}

/// <summary>The paper's map: <c>beta = clamp((r - 2) / 3, 0.1, 0.9)</c> with <c>r = 1 + 4 s</c>.</summary>
internal sealed class ClampBetaMap : BetaMap
{
    /// <inheritdoc/>
    public override string Spec => "clamp";

    /// <inheritdoc/>
    public override double Next(double risk) => Peek(risk);

    /// <inheritdoc/>
    public override double Peek(double risk) => Math.Clamp((1 + 4 * CheckRisk(risk) - 2) / 3, 0.1, 0.9);
}

/// <summary><c>beta = beta_min + (beta_max - beta_min) * s</c>.</summary>
internal sealed class LinearBetaMap : BetaMap
{
    /// <summary>Creates the map.</summary>
    public LinearBetaMap(double betaMin, double betaMax)
    {
        BetaMin = CheckBeta(betaMin, "beta_min");
        BetaMax = CheckBeta(betaMax, "beta_max");
        if (betaMin > betaMax) throw new UserInputException($"beta_min ({betaMin}) must not exceed beta_max ({betaMax}).");
    }

    /// <summary>Beta at risk 0.</summary>
    public double BetaMin { get; }

    /// <summary>Beta at risk 1.</summary>
    public double BetaMax { get; }

    /// <inheritdoc/>
    public override string Spec => string.Create(CultureInfo.InvariantCulture, $"linear:{BetaMin},{BetaMax}");

    /// <inheritdoc/>
    public override double Next(double risk) => Peek(risk);

    /// <inheritdoc/>
    public override double Peek(double risk) => BetaMin + (BetaMax - BetaMin) * CheckRisk(risk);
}

/// <summary>
/// <c>beta = beta_min + (beta_max - beta_min) * clamp((s - low) / (high - low), 0, 1)</c>: a risk at or below <c>low</c>
/// gets <c>beta_min</c>, one at or above <c>high</c> gets <c>beta_max</c>, and risks between are blended. With the
/// defaults (0 and 1) a clearly harmless example trains as plain SFT and a clearly harmful one is held entirely to the
/// reference (its targets teach nothing): unlike the paper's clamp, nothing of a clearly harmful example's SFT gradient
/// is left. A small <c>beta_min</c> keeps a light pull toward the reference on every example, which benign data also
/// needs: fine-tuning on harmless data alone erodes refusals too.
/// </summary>
internal sealed class RampBetaMap : BetaMap
{
    private readonly LinearBetaMap _range;

    /// <summary>Creates the map.</summary>
    public RampBetaMap(double riskLow, double riskHigh, double betaMin = 0, double betaMax = 1)
    {
        if (riskLow is < 0 or > 1 || riskHigh is < 0 or > 1 || !(riskLow < riskHigh))
            throw new UserInputException($"ramp needs 0 <= LOW < HIGH <= 1, not {riskLow.ToString(CultureInfo.InvariantCulture)}, {riskHigh.ToString(CultureInfo.InvariantCulture)}.");
        _range = new LinearBetaMap(betaMin, betaMax);
        RiskLow = riskLow;
        RiskHigh = riskHigh;
    }

    /// <summary>Beta at or below <see cref="RiskLow"/>.</summary>
    public double BetaMin => _range.BetaMin;

    /// <summary>Beta at or above <see cref="RiskHigh"/>.</summary>
    public double BetaMax => _range.BetaMax;

    /// <summary>The risk up to which beta is <see cref="BetaMin"/>.</summary>
    public double RiskLow { get; }

    /// <summary>The risk from which beta is <see cref="BetaMax"/>.</summary>
    public double RiskHigh { get; }

    /// <inheritdoc/>
    public override string Spec => BetaMin == 0 && BetaMax == 1
        ? string.Create(CultureInfo.InvariantCulture, $"ramp:{RiskLow},{RiskHigh}")
        : string.Create(CultureInfo.InvariantCulture, $"ramp:{RiskLow},{RiskHigh},{BetaMin},{BetaMax}");

    /// <inheritdoc/>
    public override double Next(double risk) => Peek(risk);

    /// <inheritdoc/>
    public override double Peek(double risk) => _range.Peek(Math.Clamp((CheckRisk(risk) - RiskLow) / (RiskHigh - RiskLow), 0, 1));
}

/// <summary>
/// Linear in an exponential moving average of the risk: <c>m = decay * m + (1 - decay) * s</c> (m starts at the first
/// risk seen), then <c>beta = beta_min + (beta_max - beta_min) * m</c>.
/// </summary>
internal sealed class EmaBetaMap : BetaMap
{
    private readonly LinearBetaMap _linear;
    private double? _average;

    /// <summary>Creates the map (beta from 0.1 to 0.9 by default, the paper's range).</summary>
    public EmaBetaMap(double decay, double betaMin = 0.1, double betaMax = 0.9)
    {
        if (decay is < 0 or >= 1) throw new UserInputException($"the EMA decay must lie in [0, 1), not {decay.ToString(CultureInfo.InvariantCulture)}.");
        Decay = decay;
        _linear = new LinearBetaMap(betaMin, betaMax);
    }

    /// <summary>The weight of the past.</summary>
    public double Decay { get; }

    /// <summary>The smoothed risk, once a risk has been seen.</summary>
    public double? Average => _average;

    /// <inheritdoc/>
    public override string Spec => string.Create(CultureInfo.InvariantCulture, $"ema:{Decay},{_linear.BetaMin},{_linear.BetaMax}");

    /// <inheritdoc/>
    public override bool IsStateful => true;

    /// <inheritdoc/>
    public override BetaMap Start() => new EmaBetaMap(Decay, _linear.BetaMin, _linear.BetaMax) { _text = _text };

    /// <inheritdoc/>
    public override double Next(double risk)
    {
        _average = Smooth(CheckRisk(risk));
        return _linear.Peek(_average.Value);
    }

    /// <inheritdoc/>
    public override double Peek(double risk) => _linear.Peek(Smooth(CheckRisk(risk)));

    private double Smooth(double risk) => _average is { } m ? Decay * m + (1 - Decay) * risk : risk;

    /// <inheritdoc/>
    public override JsonNode? SaveState() => _average is { } m ? JsonValue.Create(m) : null;

    /// <inheritdoc/>
    public override void RestoreState(JsonNode? state) => _average = state is null ? null : (double)state;
}

/// <summary>A constant beta: the static KL baseline, or standard fine-tuning at 0.</summary>
internal sealed class FixedBetaMap : BetaMap
{
    /// <summary>Creates the map.</summary>
    public FixedBetaMap(double beta) => Beta = CheckBeta(beta, "beta");

    public double Beta { get; }

    /// <inheritdoc/>
    public override string Spec => Beta == 0 ? "none" : string.Create(CultureInfo.InvariantCulture, $"fixed:{Beta}");

    /// <inheritdoc/>
    public override bool IgnoresRisk => true;

    /// <inheritdoc/>
    public override double Next(double risk) => Beta;

    /// <inheritdoc/>
    public override double Peek(double risk) => Beta;
}
