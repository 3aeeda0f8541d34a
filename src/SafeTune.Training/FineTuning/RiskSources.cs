using SafeTune.Runtime.Training;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Critics;
using SafeTune.Safety.Probes;

namespace SafeTune.Training.FineTuning;

/// <summary>One risk per example of a batch (in <see cref="TrainingBatch.Examples"/> order), in [0, 1], and the number of examples the source failed to score (counted as risk 1).</summary>
public sealed record RiskScores(double[] PerExample, int Failures);

/// <summary>
/// Where a batch's safety risk comes from. A source may extend the frozen reference pass (a probe fused into the
/// reference graph reads the starting model's own prompt activations there, with no extra forward pass).
/// </summary>
public abstract class RiskSource : IDisposable
{
    /// <summary>A description for logs and reports.</summary>
    public abstract string Name { get; }

    /// <summary>True when <see cref="Score"/> reads the reference pass's outputs.</summary>
    public virtual bool NeedsReferencePass => false;

    /// <summary>Extends the reference graph (returns the outputs added); null when the source does not.</summary>
    public virtual Func<Onnx.Model, IReadOnlyList<string>>? ExtendReference => null;

    /// <summary>Scores the examples of <paramref name="batch"/>; <paramref name="reference"/> holds the reference pass's outputs when it ran.</summary>
    public abstract RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference);

    /// <inheritdoc/>
    public virtual void Dispose() { }
}

/// <summary>
/// A Safety Critic on each example's prompt and target response: risk = (score - 1) / 4. Verdicts are remembered by
/// example id, so an example is judged once per run. Failed verdicts are fail-closed (score 5, risk 1) and counted.
/// </summary>
public sealed class CriticRisk(ISafetyJudge judge) : RiskSource
{
    private readonly Dictionary<string, JudgeVerdict> _seen = new(StringComparer.Ordinal);

    /// <summary>The judge.</summary>
    public ISafetyJudge Judge { get; } = judge;

    /// <summary>Items the judge failed on so far (each counted once).</summary>
    public int Failures { get; private set; }

    /// <summary>Items judged so far.</summary>
    public int Judged => _seen.Count;

    /// <inheritdoc/>
    public override string Name => "critic " + Judge.Name;

    /// <inheritdoc/>
    public override RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference)
    {
        var todo = batch.Examples.Where(r => !_seen.ContainsKey(r.Id)).DistinctBy(r => r.Id).ToList();
        if (todo.Count > 0)
        {
            var verdicts = Judge.Score([.. todo.Select(r => new JudgeItem(r.Prompt, r.Response))]);
            for (int i = 0; i < todo.Count; i++)
            {
                _seen[todo[i].Id] = verdicts[i];
                if (verdicts[i].Failed) Failures++;
            }
        }
        var scored = batch.Examples.Select(r => _seen[r.Id]).ToArray();
        return new RiskScores([.. scored.Select(v => v.Unit)], scored.Count(v => v.Failed));
    }

    /// <inheritdoc/>
    public override void Dispose() => Judge.Dispose();
}

/// <summary>
/// An activation probe trained on another model than the one being fine-tuned (for example a MiniLM guard): it reads
/// that model's activations on the prompt text, an extra forward pass of the probe's model per new prompt, in a session
/// opened once (the model's hash is checked against the probe then). Scores are remembered by example id.
/// </summary>
public sealed class ExternalProbeRisk : RiskSource
{
    private readonly Dictionary<string, double> _seen = new(StringComparer.Ordinal);
    private readonly ActivationExtractor _extractor;

    /// <summary>Opens the probe's model.</summary>
    /// <exception cref="InvalidDataException">The model file differs from the one the probe was trained on.</exception>
    public ExternalProbeRisk(ProbeFile probe)
    {
        ArgumentNullException.ThrowIfNull(probe);
        probe.CheckModel(probe.ModelPath);
        Probe = probe;
        _extractor = ProbeTraining.CreateExtractor(probe.ModelPath, probe.Tokenizer, probe.Template(), probe.Layers, probe.Pooling, probe.MaxLength);
    }

    /// <summary>The probe.</summary>
    public ProbeFile Probe { get; }

    /// <inheritdoc/>
    public override string Name => $"probe on {Path.GetFileName(Probe.ModelPath)} (separate pass)";

    /// <inheritdoc/>
    public override RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference)
    {
        var todo = batch.Examples.Where(r => !_seen.ContainsKey(r.Id)).DistinctBy(r => r.Id).ToList();
        if (todo.Count > 0)
        {
            var p = Probe.Head.PredictProbability(_extractor.Extract([.. todo.Select(r => r.Prompt)]));
            for (int i = 0; i < todo.Count; i++) _seen[todo[i].Id] = p[i];
        }
        return new RiskScores([.. batch.Examples.Select(r => _seen[r.Id])], 0);
    }

    /// <inheritdoc/>
    public override void Dispose() => _extractor.Dispose();
}

/// <summary>
/// An activation probe trained on the model being fine-tuned, fused into the frozen reference pass: the probe's
/// subgraph (<see cref="ProbeGraph"/>) reads the starting model's own prompt activations in the pass that computes the
/// reference log-probabilities anyway, so the risk costs no extra forward pass. Each row's prompt mask marks its prompt
/// tokens; the rows must hold one example each (padding, not packing).
/// </summary>
public sealed class FusedProbeRisk(ProbeFile probe) : RiskSource
{
    /// <summary>The probe.</summary>
    public ProbeFile Probe { get; } = probe;

    /// <inheritdoc/>
    public override string Name => $"probe ({Probe.Head.Kind}, fused into the reference pass)";

    /// <inheritdoc/>
    public override bool NeedsReferencePass => true;

    /// <inheritdoc/>
    public override Func<Onnx.Model, IReadOnlyList<string>>? ExtendReference => model =>
    {
        var added = ProbeGraph.Append(model, Probe, FineTuner.PromptMask, ProbeGraph.DefaultOutput);
        return [added.Output];
    };

    /// <inheritdoc/>
    public override RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference)
    {
        if (reference is null) throw new InvalidOperationException("the fused probe's risk comes from the reference pass, which did not run.");
        if (!batch.OneExamplePerRow) throw new InvalidDataException("a fused probe scores each row's prompt; a packed row holds several examples.");
        var perRow = reference.Floats(ProbeGraph.DefaultOutput);
        return new RiskScores([.. batch.Examples.Select(e => Math.Clamp((double)perRow[e.Row], 0, 1))], 0);
    }
}

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
        switch (safety.RiskKind)
        {
            case "none":
                return null;
            case "probe":
            {
                var probe = ProbeFile.Load(safety.RiskArgument);
                if (IsFused(probe, modelPath)) return new FusedProbeRisk(probe);
                if (!File.Exists(probe.ModelPath))
                    throw new FileNotFoundException($"{safety.RiskArgument}: the probe reads the model {probe.ModelPath}, which is not there (and the model being fine-tuned is another one).");
                return new ExternalProbeRisk(probe);
            }
            case "critic":
                return new CriticRisk((judges ?? JudgeSpec.Parse)(safety.RiskArgument));
            default:
                throw new ArgumentException($"--risk '{safety.Risk}' is not one of none, probe:PROBE.json, critic:SPEC.");
        }
    }

    /// <summary>The probe <c>--risk probe:PATH</c> names when it would be fused into the reference pass (trained on <paramref name="modelPath"/>); else null.</summary>
    public static ProbeFile? FusedProbe(SafetyOptions safety, string modelPath)
    {
        ArgumentNullException.ThrowIfNull(safety);
        if (safety.RiskKind != "probe") return null;
        var probe = ProbeFile.Load(safety.RiskArgument);
        return IsFused(probe, modelPath) ? probe : null;
    }

    private static bool IsFused(ProbeFile probe, string? modelPath) =>
        modelPath is not null && File.Exists(modelPath) && ProbeFile.HashFile(modelPath) == probe.ModelSha256;
}
