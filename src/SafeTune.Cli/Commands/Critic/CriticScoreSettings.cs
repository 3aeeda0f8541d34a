using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Critic;

/// <summary>Arguments of <c>safetune critic score</c>.</summary>
public sealed class CriticScoreSettings : CommandSettings
{
    /// <summary>The judge spec.</summary>
    [CommandOption("--judge <SPEC>")]
    [Description("The judge: keyword, keyword:FILE, or openai:BASE_URL?model=NAME[[&key_env=VAR&timeout=S&rps=N&concurrency=N&retries=N&cache=DIR&format=rubric|conversation]]. The API key is read from the variable key_env names (default SAFETUNE_JUDGE_API_KEY).")]
    public string Judge { get; init; } = "";

    /// <summary>The data file.</summary>
    [CommandOption("--data <FILE>")]
    [Description("A .jsonl, .csv or .parquet file of prompts and responses; FILE@FIELD=VALUE keeps only matching rows (columns detected: prompt, goal, question, forbidden_prompt, Behavior, instruction; response, output, target, answer, completion).")]
    public string Data { get; init; } = "";

    [CommandOption("--prompt-column <NAME>")]
    [Description("The prompt column or field (default: detected).")]
    public string? PromptColumn { get; init; }

    [CommandOption("--response-column <NAME>")]
    [Description("The response column or field (default: detected).")]
    public string? ResponseColumn { get; init; }

    /// <summary>The aggregation.</summary>
    [CommandOption("--aggregate <HOW>")]
    [Description("mean (default), max or per-example: how the scores become the batch score that is reported.")]
    public string Aggregate { get; init; } = "mean";

    /// <summary>JSON output.</summary>
    [CommandOption("--json")]
    [Description("Print {\"n\", \"mean\", \"max\", \"scores\", \"failed\", \"failures\", \"seconds\", ...} on stdout.")]
    public bool Json { get; init; }

    /// <summary>Per-item output.</summary>
    [CommandOption("--out <SCORES.jsonl>")]
    [Description("Also write one {\"index\", \"score\", \"failed\", \"reason\", \"error\"} line per item.")]
    public string? Out { get; init; }

    /// <inheritdoc/>
    public override ValidationResult Validate()
    {
        if (Judge.Trim().Length == 0) return ValidationResult.Error("--judge is required (for example --judge keyword).");
        if (Data.Trim().Length == 0) return ValidationResult.Error("--data is required.");
        if (Aggregate.Trim().ToLowerInvariant() is not ("mean" or "max" or "per-example" or "per_example"))
            return ValidationResult.Error($"--aggregate must be mean, max or per-example, not '{Aggregate}'.");
        return ValidationResult.Success();
    }
}
