using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.Safety.Probes;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Risk;

/// <summary>Builds the risk source a <see cref="SafetyOptions.Risk"/> names.</summary>
public static class RiskSources
{
    /// <summary>
    /// <c>none</c> gives null; <c>probe:PATH</c> a probe fused into the reference pass when it was trained on
    /// <paramref name="modelPath"/> (same SHA-256), else one that runs its own model on the prompt text;
    /// <c>critic:SPEC</c> a judge (from <paramref name="judges"/>, default <see cref="JudgeSpec.Parse"/>) on each
    /// example's prompt and target response.
    /// </summary>
    public static RiskSource? Create(SafetyOptions safety, string? modelPath, Func<string, ISafetyJudge>? judges = null)
    {
        ArgumentNullException.ThrowIfNull(safety);
        return safety.Risk switch
        {
            RiskSpec.Probe p => ProbeRisk(ProbeFile.Load(p.Path), p.Path, modelPath),
            RiskSpec.Critic c => new CriticRisk((judges ?? JudgeSpec.Parse)(c.Judge)),
            _ => null,
        };
    }

    private static RiskSource ProbeRisk(ProbeFile probe, string path, string? modelPath) =>
        IsFused(probe, modelPath) ? new FusedProbeRisk(probe)
        : File.Exists(probe.ModelPath) ? new ExternalProbeRisk(probe)
        : throw new FileNotFoundException($"{path}: the probe reads the model {probe.ModelPath}, which is not there (and the model being fine-tuned is another one).");

    /// <summary>The probe <c>--risk probe:PATH</c> names when it would be fused into the reference pass (trained on <paramref name="modelPath"/>); else null.</summary>
    public static ProbeFile? FusedProbe(SafetyOptions safety, string modelPath)
    {
        ArgumentNullException.ThrowIfNull(safety);
        if (safety.Risk is not RiskSpec.Probe p) return null;
        var probe = ProbeFile.Load(p.Path);
        return IsFused(probe, modelPath) ? probe : null;
    }

    private static bool IsFused(ProbeFile probe, string? modelPath) =>
        modelPath is not null && File.Exists(modelPath) && ProbeFile.HashFile(modelPath) == probe.ModelSha256;
}
