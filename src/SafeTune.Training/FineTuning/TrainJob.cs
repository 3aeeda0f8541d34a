using System.Text.Json.Nodes;
using SafeTune.Autodiff.Lora;
using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.Safety.Critics;
using SafeTune.Training.Data;
using SafeTune.Training.Risk;

namespace SafeTune.Training.FineTuning;

/// <summary>A fine-tune described by files: what <c>safetune train</c>, experiments and the demo run.</summary>
internal sealed record TrainJobOptions
{
    /// <summary>The starting model (ONNX, a logits output).</summary>
    public required string Model { get; init; }
    /// <summary>The same model with a key/value cache, to export beside the merged model (optional).</summary>
    public string? GenerationModel { get; init; }
    /// <summary>The tokenizer spec (see <see cref="TokenizerLoader.Load"/>).</summary>
    public required string Tokenizer { get; init; }
    /// <summary>The chat template name; null recognises it from the tokenizer's <c>tokenizer_config.json</c> (else plain).</summary>
    public string? Template { get; init; }
    /// <summary>The data specs (see <see cref="DatasetMix.SpecHelp"/>).</summary>
    public required IReadOnlyList<string> Data { get; init; }
    /// <summary>Passes over the data (used when <see cref="Steps"/> is null).</summary>
    public int Epochs { get; init; } = 1;
    /// <summary>Optimizer steps; null runs <see cref="Epochs"/> epochs.</summary>
    public long? Steps { get; init; }
    /// <summary>Examples per optimizer step.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Rows per forward/backward pass; null is <see cref="BatchSize"/> (no accumulation). Must divide the batch size.</summary>
    public int? MicroBatchSize { get; init; }
    /// <summary>The most tokens an example keeps.</summary>
    public int MaxLength { get; init; } = 512;
    /// <summary>Recompute each transformer block's activations in the backward pass instead of keeping them.</summary>
    public bool CheckpointActivations { get; init; }
    /// <summary>The element type the frozen weights are held in (see <see cref="TrainingOptions.BaseDtype"/>).</summary>
    public Onnx.ElementType BaseDtype { get; init; } = Onnx.ElementType.Float;
    /// <summary>Padding (one example per row) or packing.</summary>
    public BatchLayout Layout { get; init; } = BatchLayout.Pad;
    /// <summary>Seeds the data order, samples and LoRA initialization.</summary>
    public int Seed { get; init; }
    /// <summary>LoRA (default r = 64, alpha = 16 on every attention and MLP projection); null for full fine-tuning.</summary>
    public LoraOptions? Lora { get; init; } = new() { Rank = 64, Alpha = 16 };
    /// <summary>Which weights full fine-tuning trains (overrides by name, tied copies); used without <see cref="Lora"/>.</summary>
    public ParameterSelection Selection { get; init; } = new();
    /// <summary>AdamW (weight decay 0.01); the learning rate is the cosine schedule's peak.</summary>
    public OptimizerConfig Optimizer { get; init; } = new() { LearningRate = 2e-4, WeightDecay = 0.01 };
    /// <summary>Warm-up steps (the paper: 5).</summary>
    public int WarmupSteps { get; init; } = 5;
    /// <summary>Gradient clipping.</summary>
    public double? ClipNorm { get; init; } = 1.0;
    /// <summary>Risk source, beta map, weighting and penalty.</summary>
    public SafetyOptions Safety { get; init; } = new();
    /// <summary>The run folder; null keeps nothing on disk.</summary>
    public string? RunDirectory { get; init; }
    /// <summary>Called once the chat template is chosen, before any data is read (commands print it).</summary>
    public Action<TemplateChoice>? TemplateChosen { get; init; }
    /// <summary>Continue from the run folder's checkpoint.</summary>
    public bool Resume { get; init; }

    /// <summary>Replace a run already in <see cref="RunDirectory"/> (--overwrite).</summary>
    public bool Overwrite { get; init; }

    /// <summary>With <see cref="Resume"/>: allow the differences from the recorded settings that are safe to continue with (--force; see <see cref="RunFolder.RequireSameOptions"/>).</summary>
    public bool Force { get; init; }
    /// <summary>Checkpoint interval in steps.</summary>
    public int CheckpointEvery { get; init; } = 25;
    /// <summary>Execution provider and threads.</summary>
    public SessionConfig Runtime { get; init; } = new();
    /// <summary>Turns a judge spec (after <c>critic:</c>) into a judge.</summary>
    public Func<string, ISafetyJudge>? Judges { get; init; }
    /// <summary>Evaluation interval in steps (0: none) and the evaluation itself; see <see cref="FineTuneOptions.Evaluate"/>.</summary>
    public int EvaluateEvery { get; init; }
    /// <summary>The evaluation.</summary>
    public Func<long, Model, Model?, JsonObject>? Evaluate { get; init; }
    /// <summary>
    /// Called with each optimizer step's index and micro-batches just before the step trains on them: the token ids,
    /// labels and prompt masks exactly as the model is fed them (to log or check what a run trains on).
    /// </summary>
    public Action<long, IReadOnlyList<TrainingBatch>>? StepBatches { get; init; }
}

/// <summary>What a train job used and produced.</summary>
/// <param name="Result">The fine-tune's result.</param>
/// <param name="Examples">Examples trained on.</param>
/// <param name="Dropped">Examples left out because no response token fit.</param>
/// <param name="Truncated">Examples cut to the maximum length.</param>
/// <param name="RiskSource">The risk source's description, or null.</param>
internal sealed record TrainJobResult(FineTuneResult Result, int Examples, int Dropped, int Truncated, string? RiskSource);

/// <summary>Loads the model, tokenizer, template and data of a <see cref="TrainJobOptions"/>, resolves the risk source and runs <see cref="FineTuner"/>.</summary>
internal static class TrainJob
{
    /// <summary>Runs the job.</summary>
    public static TrainJobResult Run(TrainJobOptions o, IProgress<StepLog>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(o);
        o.Safety.Validate();
        if (o.BatchSize < 1) throw new OptionException("batch-size", $"{{batch-size}} must be at least 1, not {o.BatchSize}.");
        int micro = o.MicroBatchSize ?? o.BatchSize;
        if (micro < 1 || o.BatchSize % micro != 0)
            throw new OptionException("micro-batch", $"{{micro-batch}} {micro} must divide {{batch-size}} {o.BatchSize}.");
        if (o.Steps is < 1) throw new OptionException("steps", $"{{steps}} must be at least 1, not {o.Steps}.");
        if (o.Epochs < 1) throw new OptionException("epochs", $"{{epochs}} must be at least 1, not {o.Epochs}.");

        var model = Onnx.Model.Load(o.Model);
        Onnx.Inspection.ContribOps.EnsureTrainable(model, o.Model);
        var generation = o.GenerationModel is { } g ? Onnx.Model.Load(g) : null;
        var tokenizer = TokenizerLoader.Load(o.Tokenizer);
        VocabularyCheck.Ensure(model, o.Model, tokenizer);
        var choice = ResolveTemplate(o, tokenizer);
        o.TemplateChosen?.Invoke(choice);
        var template = choice.Template!;
        var examples = DatasetMix.Parse(o.Data, o.Seed).Load();
        if (examples.Count == 0) throw new InvalidDataException($"the data ({string.Join(", ", o.Data)}) holds no examples.");
        // Examples are cut to --max-length; a model with a shorter context reads no more than its context.
        int maxLength = Models.Generation.ContextLength.Of(model, o.Tokenizer) is int context ? Math.Min(o.MaxLength, context) : o.MaxLength;
        var tokenized = SftTokenizer.Tokenize(examples, tokenizer, template, new TokenizeOptions { MaxLength = maxLength });
        if (tokenized.Examples.Count == 0)
            throw new OptionException("max-length", $"no example keeps a response token within {{max-length}} {maxLength}.");
        var batcher = new SftBatcher(tokenized.Examples, SftBatcher.PadIdOf(tokenizer), new BatchingOptions
        {
            MicroBatchSize = micro,
            GradientAccumulationSteps = o.BatchSize / micro,
            Seed = o.Seed,
            Layout = o.Layout,
        });
        ITrainingPlan plan = new SftPlan(batcher, o.Steps ?? batcher.StepsFor(o.Epochs));
        if (o.StepBatches is { } observe) plan = new ObservedPlan(plan, observe);

        using var risk = RiskSources.Create(o.Safety, o.Model, o.Judges);
        if (risk is FusedProbeRisk && o.Layout == BatchLayout.Pack)
            throw new OptionException("pack", "a fused probe reads each row's prompt, so it needs one example per row: use padding, not {pack}.");
        var record = new JsonObject
        {
            ["model"] = Path.GetFullPath(o.Model),
            ["generation_model"] = o.GenerationModel is null ? null : Path.GetFullPath(o.GenerationModel),
            ["tokenizer"] = o.Tokenizer,
            ["template"] = template.Name,
            ["data"] = new JsonArray([.. o.Data.Select(d => (JsonNode)d)]),
            ["examples"] = tokenized.Examples.Count,
            ["steps"] = plan.Steps,
            ["epochs"] = o.Steps is null ? o.Epochs : null,
            ["batch_size"] = o.BatchSize,
            ["micro_batch"] = micro,
            ["max_length"] = maxLength,
            ["layout"] = o.Layout.ToString().ToLowerInvariant(),
            // Rounded frozen weights change what the run trains against; float32 stays unrecorded, as runs before the option.
            ["base_dtype"] = o.BaseDtype == ElementType.Float ? null : TrainingOptions.BaseDtypeName(o.BaseDtype),
            ["seed"] = o.Seed,
            ["lora"] = o.Lora is null ? null : new JsonObject { ["rank"] = o.Lora.Rank, ["alpha"] = o.Lora.Alpha, ["pattern"] = o.Lora.Pattern },
            ["parameters"] = o.Lora is not null || o.Selection.IsDefault ? null : new JsonObject
            {
                ["trainable"] = o.Selection.TrainablePattern, ["frozen"] = o.Selection.FrozenPattern, ["keep_untied"] = o.Selection.KeepUntied,
            },
            ["optimizer"] = new JsonObject
            {
                ["kind"] = o.Optimizer.Kind.ToString(), ["lr"] = o.Optimizer.LearningRate, ["weight_decay"] = o.Optimizer.WeightDecay,
                ["beta1"] = o.Optimizer.Beta1, ["beta2"] = o.Optimizer.Beta2, ["warmup"] = o.WarmupSteps, ["schedule"] = "cosine", ["clip_norm"] = o.ClipNorm,
            },
            ["safety"] = o.Safety.Record(risk?.Name),
            ["provider"] = o.Runtime.Provider.ToString(),
            ["inputs"] = InputFiles.Of(o),
        };
        var result = FineTuner.Run(new FineTuneOptions
        {
            Model = model,
            ModelPath = o.Model,
            GenerationModel = generation,
            Plan = plan,
            Lora = o.Lora,
            Selection = o.Selection,
            Optimizer = o.Optimizer,
            WarmupSteps = o.WarmupSteps,
            ClipNorm = o.ClipNorm,
            Safety = o.Safety,
            RiskSource = risk,
            RunDirectory = o.RunDirectory,
            Resume = o.Resume,
            Overwrite = o.Overwrite,
            Force = o.Force,
            CheckpointEvery = o.CheckpointEvery,
            EvaluateEvery = o.EvaluateEvery,
            Evaluate = o.Evaluate,
            Seed = o.Seed,
            Runtime = o.Runtime,
            CheckpointActivations = o.CheckpointActivations,
            BaseDtype = o.BaseDtype,
            ExpectedResponseRows = (long)micro * maxLength,
            Record = record,
        }, progress, cancellation);
        return new TrainJobResult(result, tokenized.Examples.Count, tokenized.Dropped.Count, tokenized.TruncatedCount, risk?.Name);
    }

    /// <summary>
    /// The job's chat template (<see cref="TemplateChoice.Resolve"/>). With a probe fused into the reference pass the
    /// probe reads the training prompts as the run renders them, so they must be rendered as the probe's training prompts
    /// were: a run with no template of its own takes the probe's recorded one, and any other difference is refused.
    /// </summary>
    /// <exception cref="UserInputException">The template does not fit the tokenizer, or differs from the fused probe's.</exception>
    public static TemplateChoice ResolveTemplate(TrainJobOptions o, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(o);
        var probe = RiskSources.FusedProbe(o.Safety, o.Model);
        TemplateChoice? recorded = null;
        if (probe is { ChatTemplate: { } name } && ChatTemplates.Names.Contains(name))
            recorded = new TemplateChoice(ChatTemplates.ByName(name), TemplateOrigin.Recorded, o.Tokenizer, ((RiskSpec.Probe)o.Safety.Risk).Path);
        var choice = TemplateChoice.Resolve(o.Template, o.Tokenizer, tokenizer, ChatTemplates.Plain, recorded);
        if (probe is not null && TemplateChoice.PromptFormat(choice.Template) != probe.PromptFormatOrDefault)
            throw new OptionException("risk", $"{{risk}} probe:{((RiskSpec.Probe)o.Safety.Risk).Path}: the probe was trained on prompts rendered with the chat template {probe.ChatTemplate ?? "raw (none)"}, " +
                $"but this run renders them with {choice.Name}, so the fused probe would score prompts in a format it never saw: " +
                (probe.ChatTemplate is { } n && ChatTemplates.Names.Contains(n) ? $"train with {{template}} {n}, or " : "") +
                $"train the probe again with this run's template (probe train {{template}} {(ChatTemplates.Names.Contains(choice.Name) ? choice.Name : "NAME")}).");
        return choice;
    }

    /// <summary>A plan that shows each step's micro-batches to an observer before handing them on.</summary>
    private sealed class ObservedPlan(ITrainingPlan inner, Action<long, IReadOnlyList<TrainingBatch>> observe) : ITrainingPlan
    {
        public long Steps => inner.Steps;

        public IReadOnlyList<TrainingBatch> Step(long step)
        {
            var batches = inner.Step(step);
            observe(step, batches);
            return batches;
        }
    }
}
