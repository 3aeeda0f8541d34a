using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Tokenization;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Tokenize;

/// <summary><c>safetune tokenize --tokenizer DIR (--text S | --input IN.jsonl --out OUT.jsonl) [--no-special] [--json]</c>.</summary>
public sealed class TokenizeCommand : Command<TokenizeSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, TokenizeSettings settings, CancellationToken cancellationToken)
    {
        var folder = ModelFolderTokenizer.Load(settings.Tokenizer);
        var addSpecialTokens = !settings.NoSpecial;
        if (settings.Text is { } text)
        {
            var result = folder.TokenizeText(text, addSpecialTokens);
            if (settings.Json)
            {
                JsonOut.Write(w => ModelFolderTokenizer.WriteFields(w, result));
                return ExitCodes.Ok;
            }
            AnsiConsole.MarkupLine($"{result.Ids!.Length} tokens: {Markup.Escape(ModelFolderTokenizer.Describe(result))}");
            return ExitCodes.Ok;
        }

        var summary = folder.TokenizeJsonl(settings.Input!, settings.Out!, addSpecialTokens);
        if (settings.Json)
        {
            JsonOut.Write(w =>
            {
                w.WriteNumber("rows", summary.Rows);
                w.WriteNumber("tokens", summary.Tokens);
                w.WriteString("out", settings.Out);
            });
            return ExitCodes.Ok;
        }
        AnsiConsole.MarkupLine($"{summary.Rows} rows, {summary.Tokens} tokens -> {Markup.Escape(settings.Out!)}");
        return ExitCodes.Ok;
    }
}
