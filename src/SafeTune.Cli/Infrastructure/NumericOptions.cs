using System.Globalization;
using System.Reflection;
using SafeTune.Onnx;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Infrastructure;

/// <summary>
/// The one check every numeric option of every command passes before the command runs: a floating-point option must be a
/// finite number. NaN or infinity would slip through range checks (every comparison with NaN is false) and silently turn
/// a safeguard off, for example <c>--clip-norm nan</c>. Nor may a text option hold a null character, which no path can,
/// or a path option be given empty.
/// Ranges are each command's own <c>Validate</c>.
/// </summary>
public sealed class NumericOptions : ICommandInterceptor
{
    /// <inheritdoc/>
    public void Intercept(CommandContext context, CommandSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var paths = new Dictionary<string, CommandOptionAttribute>(StringComparer.Ordinal);
        foreach (var property in settings.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetCustomAttribute<CommandOptionAttribute>() is not { } option) continue;
            if (option.ValueName is { } valueName && valueName != "TEXT" && (property.PropertyType == typeof(string) || property.PropertyType == typeof(string[])))
                foreach (var name in option.LongNames) paths["--" + name] = option;
            double? value = property.GetValue(settings) switch
            {
                double d => d,
                float f => f,
                _ => null,
            };
            if (value is { } v && !double.IsFinite(v))
                throw new UserInputException($"{Name(option)} must be a finite number, not {v.ToString(CultureInfo.InvariantCulture)}.");
            // .NET refuses a null character in a path with an ArgumentException, which would read as a bug.
            if (property.GetValue(settings) is string text ? text.Contains('\0', StringComparison.Ordinal)
                : property.GetValue(settings) is IEnumerable<string> texts && texts.Any(t => t?.Contains('\0', StringComparison.Ordinal) == true))
                throw new UserInputException($"{Name(option)}: contains a null character.");
        }
        RefuseEmptyValues(context, paths);
    }

    /// <summary>
    /// An option given an empty value (<c>--out ""</c>) names nothing: .NET would refuse the empty path with
    /// an ArgumentException, which reads as a bug. Free text (<c>&lt;TEXT&gt;</c> options, such as a prompt) may be empty.
    /// </summary>
    private static void RefuseEmptyValues(CommandContext context, Dictionary<string, CommandOptionAttribute> options)
    {
        var args = context.Arguments;
        for (int i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            int eq = arg.IndexOf('=', StringComparison.Ordinal);
            var name = eq > 0 ? arg[..eq] : arg;
            if (!options.TryGetValue(name, out var option)) continue;
            var value = eq > 0 ? arg[(eq + 1)..] : i + 1 < args.Count ? args[i + 1] : null;
            if (value is not null && string.IsNullOrWhiteSpace(value))
                throw new UserInputException($"{Name(option)} is given an empty value.");
        }
    }

    /// <summary>The option's long name as the user types it, e.g. <c>--clip-norm</c>.</summary>
    private static string Name(CommandOptionAttribute option) =>
        option.LongNames.Count > 0 ? "--" + option.LongNames[0] : "-" + option.ShortNames[0];
}
