using System.ComponentModel;
using SafeTune.Training.Data;
using SafeTune.Training.FineTuning;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Train;

/// <summary>Arguments of <c>safetune train</c>.</summary>
public sealed class TrainSettings : CommandSettings
{
    [CommandOption("--model <M.onnx>")]
    [Description("The aligned starting model (ONNX with a logits output); also the frozen reference. demo (or builtin:demo) is the demo model, built once and cached; then --tokenizer and --generation-model default to its own.")]
    public string Model { get; init; } = "";

    [CommandOption("--tokenizer <T>")]
    [Description("tokenizer.json, vocab.txt, a vocab.json + merges.txt folder, tokenizer.model, or a tiktoken name.")]
    public string Tokenizer { get; init; } = "";

    /// <summary>The chat template.</summary>
    [CommandOption("--template <NAME>")]
    [Description("chatml, llama3, phi3 or plain (default: from tokenizer_config.json beside the tokenizer, else plain).")]
    public string? Template { get; init; }

    [CommandOption("--data <FILE>")]
    [Description(DatasetMix.SpecHelp + " Repeat for several files.")]
    public string[] Data { get; init; } = [];

    /// <summary>The run folder.</summary>
    [CommandOption("--out <RUN>")]
    [Description("The run folder: options.json, audit.jsonl, metrics.jsonl, checkpoints/, model.onnx (the merged model).")]
    public string Out { get; init; } = "";

    /// <summary>The generation graph.</summary>
    [CommandOption("--generation-model <KV.onnx>")]
    [Description("The same model with a key/value cache: written with the trained weights as model-kv.onnx.")]
    public string? GenerationModel { get; init; }

    /// <summary>The ONNX Runtime GenAI folder.</summary>
    [CommandOption("--genai-out <DIR>")]
    [Description("Also write the trained model as a folder that ONNX Runtime GenAI loads as it is (genai_config.json, the key/value-cache decoder, tokenizer.json, tokenizer_config.json with the chat template). Needs --generation-model and a tokenizer.json.")]
    public string? GenAiOut { get; init; }

    [CommandOption("--method <NAME>")]
    [Description("standard (plain SFT), fixed-kl, adaptive (default when --risk is given), lisa or constrained.")]
    public string? Method { get; init; }

    /// <summary>The risk source.</summary>
    [CommandOption("--risk <SOURCE>")]
    [Description("none, probe:PROBE.json (fused into the reference pass when trained on --model), or critic:JUDGE-SPEC.")]
    public string Risk { get; init; } = "none";

    [CommandOption("--beta-map <MAP>")]
    [Description("clamp (the paper: clamp((r-2)/3, 0.1, 0.9)), linear:BMIN,BMAX, ramp:LOW,HIGH or ramp:LOW,HIGH,BMIN,BMAX (beta 0, or BMIN, up to risk LOW; 1, or BMAX, from risk HIGH), ema:DECAY or ema:DECAY,BMIN,BMAX, fixed:BETA, or none. Overrides the method's (adaptive: ramp:0.25,0.75,0.1,1; the paper's exact setting is --beta-map clamp --weighting batch).")]
    public string? BetaMap { get; init; }

    [CommandOption("--weighting <W>")]
    [Description("batch (one beta per step, the paper) or example (each example's own risk and beta). Default: the method's (adaptive: example; the others: batch).")]
    public string? Weighting { get; init; }

    /// <summary>Aggregation.</summary>
    [CommandOption("--aggregate <A>")]
    [Description("How a batch's example risks combine under batch weighting: mean (default) or max.")]
    public string Aggregate { get; init; } = "mean";

    [CommandOption("--penalty <P>")]
    [Description("kl (default), l2 (proximal pull beta * strength * (w - w_ref)) or constrained. Overrides the method's.")]
    public string? Penalty { get; init; }

    [CommandOption("--penalty-strength <X>")]
    [Description("For --penalty l2: the pull per unit of beta. Default 1.")]
    public double? PenaltyStrength { get; init; }

    [CommandOption("--lora <R>")]
    [Description("LoRA rank (default 64, as the paper) on every attention and MLP projection.")]
    public int LoraRank { get; init; } = 64;

    [CommandOption("--lora-alpha <A>")]
    [Description("LoRA alpha (default 16).")]
    public double LoraAlpha { get; init; } = 16;

    [CommandOption("--lora-pattern <REGEX>")]
    [Description("Which MatMuls get adapters (default: attention and MLP projections).")]
    public string? LoraPattern { get; init; }

    /// <summary>Full fine-tuning.</summary>
    [CommandOption("--full")]
    [Description("Train every parameter instead of LoRA adapters (buffers such as rotary tables and masks stay frozen; tied copies are re-tied).")]
    public bool Full { get; init; }

    /// <summary>Also train the float initializers matching this regex (with --full).</summary>
    [CommandOption("--trainable <REGEX>")]
    [Description("With --full: also train the float initializers whose names match REGEX, buffers included.")]
    public string? Trainable { get; init; }

    /// <summary>Freeze the initializers matching this regex (with --full).</summary>
    [CommandOption("--frozen <REGEX>")]
    [Description("With --full: freeze the initializers whose names match REGEX; it wins over --trainable.")]
    public string? Frozen { get; init; }

    /// <summary>Train copies of tied weights apart (with --full).</summary>
    [CommandOption("--keep-untied")]
    [Description("With --full: train exact copies of other weights as separate tensors instead of re-tying them.")]
    public bool KeepUntied { get; init; }

    [CommandOption("--lr <X>")]
    [Description("Peak learning rate of the cosine schedule (default 2e-4).")]
    public double LearningRate { get; init; } = 2e-4;

    [CommandOption("--weight-decay <W>")]
    [Description("AdamW weight decay (default 0.01).")]
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Warm-up.</summary>
    [CommandOption("--warmup <K>")]
    [Description("Linear warm-up steps before the cosine decay (default 5).")]
    public int Warmup { get; init; } = 5;

    [CommandOption("--epochs <N>")]
    [Description("Passes over the data (default 1; ignored with --steps).")]
    public int Epochs { get; init; } = 1;

    [CommandOption("--steps <N>")]
    [Description("Optimizer steps (default: --epochs passes).")]
    public long? Steps { get; init; }

    [CommandOption("--batch-size <B>")]
    [Description("Examples per optimizer step (default 8).")]
    public int BatchSize { get; init; } = 8;

    /// <summary>Micro-batch size.</summary>
    [CommandOption("--micro-batch <M>")]
    [Description("Examples per forward/backward pass, accumulated into one step (default: the batch size).")]
    public int? MicroBatch { get; init; }

    /// <summary>Activation checkpointing.</summary>
    [CommandOption("--checkpoint-activations")]
    [Description("Keep only the residual stream between transformer blocks and recompute each block in the backward pass: activation memory stops growing with depth, for about one more forward pass per step.")]
    public bool CheckpointActivations { get; init; }

    /// <summary>The element type of the frozen weights.</summary>
    [CommandOption("--base-dtype <TYPE>")]
    [Description("Hold the frozen weights in fp32 (default), fp16 or bf16: 16 bits halve their memory; ops still compute in fp32 on copies cast where read. Trainable weights, gradients and optimizer state stay fp32. Meant for GPUs; on the CPU it saves memory for some time per step.")]
    public string? BaseDtype { get; init; }

    [CommandOption("--max-length <L>")]
    [Description("The most tokens an example keeps (default 512).")]
    public int MaxLength { get; init; } = 512;

    /// <summary>Packing.</summary>
    [CommandOption("--pack")]
    [Description("Pack several examples per row instead of padding (not with a fused probe).")]
    public bool Pack { get; init; }

    [CommandOption("--seed <S>")]
    [Description("Seeds the data order, samples and LoRA initialization (default 0).")]
    public int Seed { get; init; }

    /// <summary>Clipping.</summary>
    [CommandOption("--clip-norm <C>")]
    [Description("Clip the global gradient norm (default 1; 0 turns clipping off).")]
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>Checkpoint interval.</summary>
    [CommandOption("--checkpoint-every <N>")]
    [Description("Save a checkpoint every N steps (default 25) and at the end.")]
    public int CheckpointEvery { get; init; } = 25;

    [CommandOption("--resume")]
    [Description("Continue the run in --out from its checkpoint.")]
    public bool Resume { get; init; }

    [CommandOption("--overwrite")]
    [Description("Replace the run already in --out (its checkpoints, logs and model). Without it or --resume, a used run folder is refused.")]
    public bool Overwrite { get; init; }

    [CommandOption("--force")]
    [Description("With --resume: continue although the settings differ from the recorded ones, where each difference is safe: more --steps or --epochs, or a file given at another path with the same content. Changed file contents, model, tokenizer, template, data, method, risk, learning rate, schedule, optimizer, seed or batch are still refused.")]
    public bool Force { get; init; }

    [CommandOption("--provider <NAME>")]
    [Description("cpu (default), cuda or directml.")]
    public string Provider { get; init; } = "cpu";

    [CommandOption("--threads <N>")]
    [Description("ONNX Runtime intra-op threads (default: all cores).")]
    public int Threads { get; init; }

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"steps\", \"examples\", \"first_loss\", \"last_loss\", \"mean_beta\", \"mean_risk\", \"risk_failures\", \"seconds\", \"ms_per_step\", \"tokens_per_s\", \"model\", \"generation_model\", \"genai_out\", \"cancelled\", \"template\"}.")]
    public bool Json { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Model.Length == 0) return ValidationResult.Error("--model is required.");
        if (Tokenizer.Length == 0 && !Infrastructure.ModelSource.IsNamed(Model)) return ValidationResult.Error("--tokenizer is required.");
        if (Data.Length == 0) return ValidationResult.Error("--data is required.");
        if (BaseDtype is not null && Runtime.Training.TrainingOptions.ParseBaseDtype(BaseDtype) is null)
            return ValidationResult.Error($"--base-dtype must be {Runtime.Training.TrainingOptions.BaseDtypeNames}, not '{BaseDtype}'.");
        if (Out.Length == 0) return ValidationResult.Error("--out is required.");
        if (GenAiOut is not null && GenerationModel is null)
            return ValidationResult.Error("--genai-out writes the key/value-cache decoder: give it with --generation-model.");
        if (GenAiOut is { Length: 0 }) return ValidationResult.Error("--genai-out needs a folder.");
        if (!Full && (Trainable is not null || Frozen is not null || KeepUntied))
            return ValidationResult.Error("--trainable, --frozen and --keep-untied choose weights for full fine-tuning; add --full.");
        if (Weighting is not (null or "batch" or "example")) return ValidationResult.Error($"--weighting must be batch or example, not '{Weighting}'.");
        if (Aggregate is not ("mean" or "max")) return ValidationResult.Error($"--aggregate must be mean or max, not '{Aggregate}'.");
        if (Penalty is not (null or "kl" or "l2" or "constrained")) return ValidationResult.Error($"--penalty must be kl, l2 or constrained, not '{Penalty}'.");
        if (Method is not null && !Methods.Names.Contains(Method)) return ValidationResult.Error($"--method must be one of {string.Join(", ", Methods.Names)}, not '{Method}'.");
        if (Resume && Overwrite) return ValidationResult.Error("--resume and --overwrite exclude each other.");
        if (Force && !Resume) return ValidationResult.Error("--force goes with --resume: it allows safe differences from the recorded settings.");
        if (ClipNorm < 0) return ValidationResult.Error($"--clip-norm must be 0 (off) or positive, not {ClipNorm}.");
        return ValidationResult.Success();
    }
}
