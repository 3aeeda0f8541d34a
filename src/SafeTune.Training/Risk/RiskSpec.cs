using SafeTune.Onnx;

namespace SafeTune.Training.Risk;

/// <summary>
/// Where a fine-tune's risk comes from, parsed once from its spec: <see cref="None"/>, <see cref="Probe"/>
/// (<c>probe:PROBE.json</c>, an activation probe) or <see cref="Critic"/> (<c>critic:SPEC</c>, a Safety Critic judge).
/// </summary>
/// <param name="Spec">The spec as given; a run records it as it is, so a resume compares the same text.</param>
public abstract record RiskSpec(string Spec)
{
    /// <summary>No risk source.</summary>
    /// <param name="Spec">The spec as given.</param>
    public sealed record None(string Spec = "none") : RiskSpec(Spec);

    /// <summary>An activation probe read from <paramref name="Path"/>.</summary>
    /// <param name="Path">The probe file (<c>probe.json</c>).</param>
    /// <param name="Spec">The spec as given.</param>
    public sealed record Probe(string Path, string Spec) : RiskSpec(Spec)
    {
        /// <summary>The probe at <paramref name="path"/>.</summary>
        public Probe(string path) : this(path, "probe:" + path) { }
    }

    /// <summary>A Safety Critic judge built from <paramref name="Judge"/> (<c>JudgeSpec.Parse</c>).</summary>
    /// <param name="Judge">The judge spec.</param>
    /// <param name="Spec">The spec as given.</param>
    public sealed record Critic(string Judge, string Spec) : RiskSpec(Spec)
    {
        /// <summary>The judge <paramref name="judge"/>.</summary>
        public Critic(string judge) : this(judge, "critic:" + judge) { }
    }

    /// <summary>Parses <c>none</c>, <c>probe:PROBE.json</c> or <c>critic:SPEC</c> (the kind in any case).</summary>
    /// <exception cref="OptionException">The spec is none of these, or names no file or judge; the option is <c>risk</c>.</exception>
    public static RiskSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var parts = spec.Split(':', 2);
        var argument = parts is [_, var rest] ? rest : "";
        var kind = parts[0].Trim().ToLowerInvariant();
        if (kind is "probe" or "critic" && argument.Trim().Length == 0)
            throw new OptionException("risk", $"{{risk}} '{spec}' needs {(kind == "probe" ? "a probe file" : "a judge spec")} after the colon.");
        return kind switch
        {
            "none" => new None(spec),
            "probe" => new Probe(argument, spec),
            "critic" => new Critic(argument, spec),
            _ => throw new OptionException("risk", $"{{risk}} '{spec}' is not one of none, probe:PROBE.json, critic:SPEC."),
        };
    }

    /// <inheritdoc/>
    public sealed override string ToString() => Spec;
}
