using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Data;
using SafeTune.Safety.Metrics;

namespace SafeTune.Safety.Probes;

/// <summary>Options for training an activation probe.</summary>
public sealed record ProbeTrainOptions
{
    /// <summary>The ONNX model whose prompt activations are read.</summary>
    public required string ModelPath { get; init; }
    /// <summary>The tokenizer spec.</summary>
    public required string Tokenizer { get; init; }
    /// <summary>Prompt files of harmful requests (CSV, JSONL, TXT; FILE:COLUMN to name the column).</summary>
    public required IReadOnlyList<string> Harmful { get; init; }
    /// <summary>Prompt files of harmless requests.</summary>
    public required IReadOnlyList<string> Harmless { get; init; }
    /// <summary>Layers to read; null for all.</summary>
    public IReadOnlyList<int>? Layers { get; init; }
    /// <summary>The pooling.</summary>
    public ActivationPooling Pooling { get; init; } = ActivationPooling.MeanTokensThenLayers;
    /// <summary>Prompt length limit.</summary>
    public int MaxLength { get; init; } = 128;
    /// <summary>Regularisation strengths tried by cross-validation.</summary>
    public IReadOnlyList<double> Lambdas { get; init; } = [1e-4, 1e-3, 1e-2, 1e-1];
    /// <summary>Cross-validation folds.</summary>
    public int Folds { get; init; } = 5;
    /// <summary>Seed of the fold split.</summary>
    public int Seed { get; init; }
}

/// <summary>What a probe scores on a labelled set.</summary>
public sealed record ProbeMetrics(double Auroc, double TprAt1PctFpr, double TprAt5PctFpr, double Accuracy, double Ece, int Harmful, int Harmless);

/// <summary>Trains and evaluates L2-logistic activation probes.</summary>
public static class ProbeTraining
{
    /// <summary>Extracts features, fits the head with cross-validated regularisation, and returns the probe.</summary>
    public static ProbeFile Train(ProbeTrainOptions o)
    {
        var harmful = o.Harmful.SelectMany(PromptFile.Read).ToList();
        var harmless = o.Harmless.SelectMany(PromptFile.Read).ToList();
        if (harmful.Count < o.Folds || harmless.Count < o.Folds)
            throw new InvalidDataException($"need at least {o.Folds} harmful and {o.Folds} harmless prompts, got {harmful.Count} and {harmless.Count}.");
        using var extractor = Extractor(o.ModelPath, o.Tokenizer, o.Layers, o.Pooling, o.MaxLength);
        var x = extractor.Extract([.. harmful, .. harmless]);
        bool[] y = [.. harmful.Select(_ => true), .. harmless.Select(_ => false)];
        var cv = LogisticRegression.FitWithCrossValidation(x, y, o.Lambdas, o.Folds, o.Seed);
        return new ProbeFile
        {
            ModelPath = Path.GetFullPath(o.ModelPath),
            ModelSha256 = ProbeFile.HashFile(o.ModelPath),
            Tokenizer = o.Tokenizer,
            Layers = o.Layers,
            Pooling = o.Pooling,
            MaxLength = o.MaxLength,
            Head = cv.Model,
        };
    }

    /// <summary>Harm probabilities of prompts; the model defaults to the one recorded in the probe and must match its hash.</summary>
    public static double[] Score(ProbeFile probe, IReadOnlyList<string> prompts, string? modelPath = null, string? tokenizer = null)
    {
        var model = modelPath ?? probe.ModelPath;
        probe.CheckModel(model);
        using var extractor = Extractor(model, tokenizer ?? probe.Tokenizer, probe.Layers, probe.Pooling, probe.MaxLength);
        return probe.Head.PredictProbability(extractor.Extract(prompts));
    }

    /// <summary>AUROC, TPR at 1% and 5% FPR, accuracy at the probe's threshold and calibration error on labelled files.</summary>
    public static ProbeMetrics Evaluate(ProbeFile probe, IReadOnlyList<string> harmfulFiles, IReadOnlyList<string> harmlessFiles, string? modelPath = null, string? tokenizer = null)
    {
        var harmful = harmfulFiles.SelectMany(PromptFile.Read).ToList();
        var harmless = harmlessFiles.SelectMany(PromptFile.Read).ToList();
        if (harmful.Count == 0 || harmless.Count == 0) throw new InvalidDataException("evaluation needs harmful and harmless prompts.");
        var scores = Score(probe, [.. harmful, .. harmless], modelPath, tokenizer);
        bool[] labels = [.. harmful.Select(_ => true), .. harmless.Select(_ => false)];
        return new ProbeMetrics(
            BinaryMetrics.Auroc(scores, labels), BinaryMetrics.TprAtFpr(scores, labels, 0.01), BinaryMetrics.TprAtFpr(scores, labels, 0.05),
            BinaryMetrics.Accuracy(scores, labels, probe.Threshold), BinaryMetrics.ExpectedCalibrationError(scores, labels), harmful.Count, harmless.Count);
    }

    private static ActivationExtractor Extractor(string modelPath, string tokenizer, IReadOnlyList<int>? layers, ActivationPooling pooling, int maxLength) =>
        new(Model.Load(modelPath), TokenizerLoader.Load(tokenizer), null,
            new ActivationOptions { Layers = layers, Pooling = pooling, MaxLength = maxLength });
}
